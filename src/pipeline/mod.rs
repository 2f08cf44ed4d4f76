//! The batch around the engine: read the inputs, reject what cannot be computed, group acts
//! by patient, run the engine on chunks of patients in parallel, and stream the outcomes into
//! the writers and the aggregates; everything is written atomically.
//!
//! Inputs that fit are read whole here ([`prepare`], also used by `validate`); larger ones go
//! through [`partitioned::run`], which cuts them into ranges of patients and hands each range
//! to the same grouping and checks ([`assemble`]) and the same [`Sink`]. `explain` reads the
//! files in passes that keep the explained acts' patients ([`prepare_for_acts`]).
//!
//! Determinism: patients are processed in `patient_id` order and each patient's acts in
//! (`care_date`, `act_id`) order; each chunk's results are collected in order (rayon's ordered
//! `collect`) before they are written, so the outputs are the same bytes whatever the thread
//! count.

mod cpu;
mod direct_io;
mod one_act;
mod pages;
mod partition;
mod partitioned;
mod rejects;
mod sink;
mod spill;
mod worker;

pub use direct_io::SpillIo;
pub use one_act::prepare_for_acts;
pub use pages::{
    PURGE_DELAY_OPTION, hand_back_freed_pages_now, should_hand_back_freed_pages,
    turn_off_huge_pages,
};
pub use partition::{default_memory_limit, parse_size};
pub use partitioned::{Limits, run};
pub use spill::SpillCompression;

use sink::Sink;
// FxHash: the keys are ids from our own inputs, and SipHash was ~3 % of a run.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Datelike;
use rayon::prelude::*;
use rust_decimal::Decimal;

use crate::audit::Compare;
use crate::engine::{self, PatientInput, PatientResult};
use crate::io::read::{self, ReadError, ReadOptions, Sourced};
use crate::io::write::{Format, WriteError};
use crate::model::{Act, Beneficiary, Outcome, Reject, RightPeriod, YearCounter};
use crate::report::{SummaryRow, Totals};
use crate::rules::RuleBook;

/// Patients computed together before their outcomes are written: bounds the outcomes held in
/// memory while keeping the cores busy. 10 M acts: 2048 rather than 4096 lowers the peak RSS
/// from 460 to 428 MiB (four runs each), the time the same within the machine's noise.
const CHUNK_PATIENTS: usize = 2048;

/// The input files of a run.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub acts: PathBuf,
    pub beneficiaries: PathBuf,
    pub rights: Option<PathBuf>,
    pub counters: Option<PathBuf>,
    pub read: ReadOptions,
}

/// Where an act came from: index into [`Prepared::act_files`] and 1-based data row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    pub file: u32,
    pub row: u64,
}

/// One patient of a [`Prepared`] set: where their acts are, sorted by (`care_date`,
/// `act_id`), in [`Prepared::acts`] (and their origins in [`Prepared::origins`]).
#[derive(Debug)]
pub struct PatientActs {
    pub patient_id: String,
    pub acts: std::ops::Range<usize>,
}

/// Rows keyed by `patient_id`.
pub type ByPatient<T> = HashMap<String, T>;

/// Everything read and checked, ready for the engine.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The patients with acts, sorted by `patient_id`.
    pub patients: Vec<PatientActs>,
    /// Acts that passed the checks, by patient (in the order of `patients`), then by
    /// (`care_date`, `act_id`): one vector for the whole set, not one per patient.
    pub acts: Vec<Act>,
    /// Where each act of `acts` was read.
    pub origins: Vec<Origin>,
    pub beneficiaries: ByPatient<Beneficiary>,
    pub rights: ByPatient<Vec<RightPeriod>>,
    pub rights_known: bool,
    pub opening: ByPatient<Vec<YearCounter>>,
    /// The acts files, as named in rejects.
    pub act_files: Vec<String>,
    pub rejects: Vec<Reject>,
    /// Rejected rows of the beneficiaries and rights files (the others are act rows).
    pub other_rejects: u64,
    /// Act rows read.
    pub read: u64,
    /// The files read, for the manifest: (role, path).
    pub files: Vec<(&'static str, String)>,
}

impl Prepared {
    /// A patient's acts, sorted by (`care_date`, `act_id`).
    pub fn acts_of(&self, p: &PatientActs) -> &[Act] {
        &self.acts[p.acts.clone()]
    }

    /// Where a patient's acts were read, in the order of [`Prepared::acts_of`].
    pub fn origins_of(&self, p: &PatientActs) -> &[Origin] {
        &self.origins[p.acts.clone()]
    }

    /// The engine's input for one of this run's patients: their acts, rights and opening
    /// counters.
    pub fn input<'a>(&'a self, p: &'a PatientActs) -> PatientInput<'a> {
        PatientInput {
            beneficiary: &self.beneficiaries[&p.patient_id],
            acts: self.acts_of(p),
            rights: self.rights.get(&p.patient_id).map_or(&[], Vec::as_slice),
            rights_known: self.rights_known,
            opening: self.opening.get(&p.patient_id).map_or(&[], Vec::as_slice),
        }
    }
}

/// Why a run failed (exit codes of SPEC §1).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("{0}")]
    Usage(String),
    /// A temporary spill file could not be written or read back.
    #[error("{0}")]
    Spill(String),
    /// Acts declared sorted (`--sorted`), or found sorted by a first pass, are not: file, row
    /// and ids.
    #[error("{0}")]
    NotSorted(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RunError {
    /// SPEC §1: 2 for usage or configuration, 1 for unreadable input or internal errors.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Usage(_) => 2,
            RunError::Write(e) if e.is_usage() => 2,
            _ => 1,
        }
    }
}

/// Reads and checks the inputs: duplicate `act_id`s (the first row is kept) and acts of
/// unknown patients are rejected here (RULES §7.6, SPEC §2).
pub fn prepare(inputs: &Inputs) -> Result<Prepared, RunError> {
    let bens = read::read_beneficiaries(&inputs.beneficiaries, &inputs.read)?;
    let mut rejects = bens.rejects;
    let mut files: Vec<(&'static str, String)> = bens
        .files
        .iter()
        .map(|f| ("beneficiaries", f.clone()))
        .collect();
    let beneficiaries = index_beneficiaries(bens.rows, &bens.files, &mut rejects);

    let mut rights: HashMap<String, Vec<RightPeriod>> = HashMap::default();
    if let Some(path) = &inputs.rights {
        let loaded = read::read_rights(path, &inputs.read)?;
        files.extend(loaded.files.iter().map(|f| ("rights", f.clone())));
        rejects.extend(loaded.rejects);
        rights = group_rights(loaded.rows.into_iter().map(|r| r.value));
    }

    let mut opening: HashMap<String, Vec<YearCounter>> = HashMap::default();
    if let Some(path) = &inputs.counters {
        // The manifest first, as the partitioned path does: a counters file of another
        // format is refused as such, whatever its rows hold.
        let written = check_manifest(path)?;
        let counters = read::read_counters(path)?;
        check_counters(path, &counters)?;
        check_counter_rows(path, counters.len() as u64, written.as_ref())?;
        opening = group_counters(path, counters)?;
        files.push(("counters", path.display().to_string()));
    }
    let other_rejects = rejects.len() as u64;
    let acts = read::read_acts(&inputs.acts, &inputs.read)?;
    files.extend(acts.files.iter().map(|f| ("acts", f.clone())));
    rejects.extend(acts.rejects);
    let base = Prepared {
        beneficiaries,
        rights,
        rights_known: inputs.rights.is_some(),
        opening,
        act_files: acts.files,
        rejects,
        other_rejects,
        read: acts.read,
        files,
        ..Prepared::default()
    };
    assemble(
        base,
        acts.rows,
        inputs.counters.as_deref(),
        IdsChecked::Here,
    )
}

/// Builds [`Prepared`] from a source other than the canonical files (an SNDS extract): the
/// same checks as [`prepare`] (duplicates, unknown patients) apply. `origins` says where each
/// act was read (its file in `act_files`, its data row), as the rejects name it.
pub fn from_parts(
    acts: Vec<Act>,
    (origins, act_files): (Vec<(u32, u64)>, Vec<String>),
    beneficiaries: Vec<Beneficiary>,
    rights: Vec<RightPeriod>,
    rights_known: bool,
    (rejects, other_rejects): (Vec<Reject>, u64),
    files: Vec<(&'static str, String)>,
) -> Result<Prepared, RunError> {
    let mut by_id: HashMap<String, Beneficiary> = HashMap::default();
    for b in beneficiaries {
        by_id.entry(b.patient_id.clone()).or_insert(b);
    }
    let rights_by = group_rights(rights);
    let read = (acts.len() + rejects.len()) as u64 - other_rejects;
    // Zipped below: an act without its origin would be lost without a word.
    assert_eq!(acts.len(), origins.len(), "an origin per act");
    let rows = acts
        .into_iter()
        .zip(origins)
        .map(|(value, (file, row))| Sourced {
            file: file as usize,
            row,
            value,
        })
        .collect();
    let base = Prepared {
        beneficiaries: by_id,
        rights: rights_by,
        rights_known,
        act_files,
        rejects,
        other_rejects,
        read,
        files,
        ..Prepared::default()
    };
    assemble(base, rows, None, IdsChecked::Here)
}

/// Indexes the beneficiaries by `patient_id`; a second row of the same patient is rejected
/// (the first row, in file then row order, is kept).
fn index_beneficiaries(
    rows: Vec<Sourced<Beneficiary>>,
    files: &[String],
    rejects: &mut Vec<Reject>,
) -> HashMap<String, Beneficiary> {
    let mut beneficiaries: HashMap<String, Beneficiary> =
        HashMap::with_capacity_and_hasher(rows.len(), Default::default());
    for Sourced { file, row, value } in rows {
        if beneficiaries.contains_key(&value.patient_id) {
            rejects.push(Reject {
                file: files[file].clone(),
                row,
                act_id: String::new(),
                column: "patient_id".into(),
                reason: "duplicate_patient_id".into(),
                value: value.patient_id,
            });
            continue;
        }
        beneficiaries.insert(value.patient_id.clone(), value);
    }
    beneficiaries
}

fn group_rights(rows: impl IntoIterator<Item = RightPeriod>) -> HashMap<String, Vec<RightPeriod>> {
    let mut rights: HashMap<String, Vec<RightPeriod>> = HashMap::default();
    for r in rows {
        rights.entry(r.patient_id.clone()).or_default().push(r);
    }
    rights
}

/// The opening counters of `path` by patient; two rows of one patient and year are an error
/// (added together, they would charge the caps twice).
fn group_counters(
    path: &Path,
    rows: impl IntoIterator<Item = YearCounter>,
) -> Result<HashMap<String, Vec<YearCounter>>, RunError> {
    let mut opening: HashMap<String, Vec<YearCounter>> = HashMap::default();
    for c in rows {
        let years = opening.entry(c.patient_id.clone()).or_default();
        if years.iter().any(|y| y.year == c.year) {
            return Err(ReadError::RepeatedCounter {
                file: path.display().to_string(),
                patient: c.patient_id.to_string(),
                year: c.year,
            }
            .into());
        }
        years.push(c);
    }
    Ok(opening)
}

/// Where duplicate `act_id`s are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdsChecked {
    /// In [`assemble`]: the rows are the whole input.
    Here,
    /// Before: the rows are one partition, and ids were checked across partitions.
    Already,
}

/// Rejects duplicate `act_id`s (the first row is kept: rows are in file, then row order) and
/// acts of unknown patients, then groups the acts by patient.
fn assemble(
    mut base: Prepared,
    mut rows: Vec<Sourced<Act>>,
    counters: Option<&Path>,
    ids: IdsChecked,
) -> Result<Prepared, RunError> {
    let mut duplicate = vec![false; rows.len()];
    if ids == IdsChecked::Here {
        let mut seen: HashSet<&str> =
            HashSet::with_capacity_and_hasher(rows.len(), Default::default());
        for (i, r) in rows.iter().enumerate() {
            duplicate[i] = !seen.insert(r.value.act_id.as_str());
        }
    }
    // Patients are ranked by `patient_id`; acts are sorted by (rank, date, id) through small
    // keys, then each act moves once, to its place in one vector (an in-place permutation).
    if rows.len() > u32::MAX as usize {
        return Err(RunError::Internal(format!(
            "{} act rows in one partition: run with a lower --memory-limit",
            rows.len()
        )));
    }
    let mut ids: Vec<String> = base.beneficiaries.keys().cloned().collect();
    ids.par_sort_unstable();
    let rank: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    // The kept rows' sort keys ((patient rank, date) packed in a u64, row); the rows then
    // move once, straight to their place (they are large: moving them is most of the cost of
    // grouping).
    let mut keys: Vec<(u64, u32)> = Vec::with_capacity(rows.len());
    // The first 16 bytes of each act id, ordered like the ids: the acts of one patient and
    // day are sorted on them without reading their rows again (a cache miss each). 10 M
    // acts: the grouping took 1.9 → 1.5 s of CPU (`perf`, one run each).
    let mut id_prefixes: Vec<u128> = Vec::with_capacity(rows.len());
    let mut last_year: Option<i32> = None;
    let mut new_rejects = Vec::new();
    for (i, (Sourced { value, .. }, dup)) in rows.iter().zip(duplicate).enumerate() {
        let sourced = &rows[i];
        let reject = |column: &str, reason: &str, v: &str| {
            act_reject(&base.act_files, sourced, column, reason, v)
        };
        last_year = last_year.max(Some(value.care_date.year()));
        id_prefixes.push(partition::id_prefix(value.act_id.as_bytes()));
        if dup {
            new_rejects.push(reject("act_id", "duplicate_act_id", &value.act_id));
            continue;
        }
        match rank.get(value.patient_id.as_str()) {
            None => new_rejects.push(reject("patient_id", "unknown_patient", &value.patient_id)),
            Some(&r) => keys.push((patient_day(r as u32, value.care_date), i as u32)),
        }
    }
    drop(rank);
    base.rejects.extend(new_rejects);
    if let Some(path) = counters {
        check_counter_years(
            path,
            last_year,
            base.opening.values().flatten().map(|c| c.year),
        )?;
    }
    // By (patient, date) on the packed integers, then the acts of one patient and day (a few)
    // by id. Act ids are unique here (duplicates were rejected): the order is total.
    keys.par_sort_unstable_by_key(|&(key, _)| key);
    for same_day in keys.chunk_by_mut(|a, b| a.0 == b.0) {
        if same_day.len() > 1 {
            same_day.sort_unstable_by(|a, b| {
                let (a, b) = (a.1 as usize, b.1 as usize);
                id_prefixes[a]
                    .cmp(&id_prefixes[b])
                    .then_with(|| rows[a].value.act_id.cmp(&rows[b].value.act_id))
            });
        }
    }
    drop(id_prefixes);
    // Each row moves once, in place, to its place in that order; the rejected rows go last
    // and are dropped. No second copy of the rows, and no vector per patient.
    let kept = keys.len();
    let mut place = vec![u32::MAX; rows.len()];
    for (to, &(_, from)) in keys.iter().enumerate() {
        place[from as usize] = to as u32;
    }
    for (to, slot) in (kept..).zip(place.iter_mut().filter(|p| **p == u32::MAX)) {
        *slot = to as u32;
    }
    base.origins = keys
        .iter()
        .map(|&(_, i)| {
            let r = &rows[i as usize];
            Origin {
                file: r.file as u32,
                row: r.row,
            }
        })
        .collect();
    let mut patients: Vec<PatientActs> = Vec::new();
    let mut start = 0;
    for group in keys.chunk_by(|a, b| a.0 >> 32 == b.0 >> 32) {
        patients.push(PatientActs {
            patient_id: std::mem::take(&mut ids[(group[0].0 >> 32) as usize]),
            acts: start..start + group.len(),
        });
        start += group.len();
    }
    drop(keys);
    permute(&mut rows, place);
    rows.truncate(kept);
    // In place: an `Act` is its row without the origin. The vector keeps the rows' capacity
    // (the rejected rows' places, a read buffer's growth): given back when that is much.
    base.acts = rows.into_iter().map(|r| r.value).collect();
    if base.acts.capacity() > base.acts.len() + base.acts.len() / 4 {
        base.acts.shrink_to_fit();
    }
    base.patients = patients;
    Ok(base)
}

/// A rejected acts row, as a run's rejects name it: its file (of `files`), row and act id.
fn act_reject(
    files: &[String],
    row: &Sourced<Act>,
    column: &str,
    reason: &str,
    value: &str,
) -> Reject {
    Reject {
        file: files.get(row.file).cloned().unwrap_or_default(),
        row: row.row,
        act_id: row.value.act_id.to_string(),
        column: column.into(),
        reason: reason.into(),
        value: value.into(),
    }
}

/// Asks the CPU to bring `item`'s bytes into the cache, without waiting for them: for rows
/// visited in an order the hardware cannot guess (a partition's rows gathered from the read
/// chunks, a permutation's cycles), each otherwise a cache miss.
#[inline(always)]
pub(crate) fn prefetch<T>(item: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = item.cast::<i8>();
        for offset in (0..size_of::<T>()).step_by(64) {
            // SAFETY: a prefetch is a hint: it never faults, whatever the address.
            #[allow(unused_unsafe)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset))
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = item;
}

/// How many items of a cycle [`permute`] asks for before it copies them. 10 M acts: the
/// grouping of the partitions' acts ([`assemble`]) took 2.4 → 1.9 s of CPU (`perf`, one run
/// each).
const PERMUTE_AHEAD: usize = 6;

/// Moves each `items[i]` to `items[place[i]]`, in place: `place` must be a permutation of the
/// indices, and there are at most `u32::MAX` items (both checked first: anything else panics
/// before an item moves). Each item is copied once (the first of each cycle twice), one cycle
/// at a time, into the slot its successor left: a swap would copy two items three times, and
/// the acts moved here are large (about 280 bytes).
fn permute<T>(items: &mut [T], place: Vec<u32>) {
    // `from[to]`: the item that goes to `to`. Built and checked before anything moves. Past
    // `u32::MAX` items an index would wrap, and the check below could pass a non-permutation.
    assert!(
        items.len() <= u32::MAX as usize,
        "too many items to permute"
    );
    assert_eq!(place.len(), items.len(), "one place per item");
    let mut from = vec![u32::MAX; items.len()];
    for (i, &to) in place.iter().enumerate() {
        let slot = &mut from[to as usize];
        assert_eq!(*slot, u32::MAX, "two items for place {to}");
        *slot = i as u32;
    }
    drop(place);
    let base = items.as_mut_ptr();
    for start in 0..items.len() {
        if from[start] == u32::MAX || from[start] as usize == start {
            continue;
        }
        // SAFETY: `from` is a permutation of `0..items.len()` (each place was given once, there
        // are as many places as items, and every index fits a `u32` without wrapping), so
        // every index below is in bounds. The item at
        // `start` is held aside; each step copies the item that belongs in the empty slot
        // into it, which empties the slot it came from; the cycle ends where it began, and the
        // held item fills the last empty slot. Each slot of the cycle is thus written once
        // and read once, and nothing in between can panic (no indexing can fail, no user code
        // runs): no item is dropped twice or lost.
        unsafe {
            let held = std::ptr::read(base.add(start));
            let mut empty = start;
            // The cycle's items are scattered: `ahead` walks it PERMUTE_AHEAD steps in front,
            // asking for each item before it is copied (only reading `from`).
            let mut ahead = start;
            for _ in 0..PERMUTE_AHEAD {
                ahead = from[ahead] as usize;
                prefetch(base.add(ahead));
                if ahead == start {
                    break;
                }
            }
            loop {
                let next = from[empty] as usize;
                from[empty] = u32::MAX;
                if next == start {
                    std::ptr::write(base.add(empty), held);
                    break;
                }
                if ahead != start {
                    ahead = from[ahead] as usize;
                    prefetch(base.add(ahead));
                }
                std::ptr::copy_nonoverlapping(base.add(next), base.add(empty), 1);
                empty = next;
            }
        }
    }
}

/// A patient's rank and a date as one integer that sorts like the pair: the rank in the high
/// half, the day number (sign bit flipped, so that negative days sort first) in the low half.
fn patient_day(rank: u32, date: chrono::NaiveDate) -> u64 {
    let day = (date.num_days_from_ce() as u32) ^ (1 << 31);
    (u64::from(rank) << 32) | u64::from(day)
}

/// Counters of a later year than every act row read are from another period: refuse them
/// rather than charge this period against caps already used later (issue 4). Earlier years
/// are accepted: December's counters open January's run (the caps restart with the year, the
/// charged stays carry over).
fn check_counter_years(
    path: &Path,
    last_year: Option<i32>,
    years: impl Iterator<Item = i32>,
) -> Result<(), RunError> {
    let Some(last) = last_year else { return Ok(()) };
    if let Some(year) = years.filter(|y| *y > last).max() {
        return Err(RunError::Usage(format!(
            "{}: counters of {year}, later than every act (last year {last}); pass the counters of the period before this one",
            path.display()
        )));
    }
    Ok(())
}

/// What the manifest beside a counters file says its run wrote there.
#[derive(Debug, Default)]
pub(crate) struct WrittenCounters {
    /// The rows written (every manifest has them).
    rows: Option<u64>,
    /// The file's SHA-256 (manifests since counters were hashed; older ones have none).
    sha256: Option<String>,
}

/// Issue 4: counters are state; those written by another version of the format, or next to a
/// manifest that says so, or without a column their format writes, are refused rather than
/// misread. Returns what the manifest says its run wrote, if there is one
/// ([`check_counter_rows`] checks it once the file is read).
fn check_manifest(path: &Path) -> Result<Option<WrittenCounters>, RunError> {
    let manifest = path.with_file_name(crate::io::write::MANIFEST_FILE);
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            RunError::Usage(format!("{}: not a rac manifest: {e}", manifest.display()))
        })?;
        let format = value["counters_format"].as_u64();
        if !format.is_some_and(|f| COUNTERS_FORMATS_READ.contains(&f)) {
            return Err(RunError::Usage(format!(
                "{}: written by rac {} with counters format {}; this rac reads formats {COUNTERS_FORMATS_READ:?} — recompute the earlier period with this version",
                path.display(),
                value["version"].as_str().unwrap_or("?"),
                format.map_or("(none)".to_string(), |f| f.to_string())
            )));
        }
        // Format 2 always writes `stay_starts`: a file without it was changed since (read as
        // format 1, its stays' starts would be lost without a word).
        if format >= Some(2) {
            read::require_column(path, "stay_starts")?;
        }
        // Formats 3 and 4 always write `open_stays` (read as format 2, its stays' sums would
        // be lost without a word).
        if format >= Some(3) {
            read::require_column(path, "open_stays")?;
        }
        return Ok(Some(WrittenCounters {
            rows: value["rows"]["counters"].as_u64(),
            sha256: value["counters"]["sha256"].as_str().map(str::to_owned),
        }));
    }
    Ok(None)
}

/// The manifest beside a counters file, parsed, with its path; `None` without one (or one
/// that does not parse: the run refuses it in [`check_manifest`]).
pub fn manifest_beside(counters: &Path) -> Option<(PathBuf, serde_json::Value)> {
    let manifest = counters.with_file_name(crate::io::write::MANIFEST_FILE);
    let value = serde_json::from_str(&std::fs::read_to_string(&manifest).ok()?).ok()?;
    Some((manifest, value))
}

/// The entries of role `role` in a manifest's `inputs`.
fn inputs_of<'v>(
    inputs: &'v serde_json::Value,
    role: &'static str,
) -> impl Iterator<Item = &'v serde_json::Value> {
    inputs
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(move |e| e["role"] == role)
}

/// Fails when an acts file of this run was read by the run that wrote its opening counters
/// (the same SHA-256 and size among the acts of the manifest beside them) and holds rows: its
/// acts would count twice against the year's caps, without a word (a run given its own
/// output's counters again, a folder of acts that keeps the earlier months' files). `inputs`
/// is the manifest's list of this run's inputs. A file without a row that reads (an empty
/// month, the same bytes every month) counts nothing and passes; so do counters without a
/// manifest (the CLI warns of those), and the same acts in other bytes (another format, order
/// or line end: the check is by SHA-256).
pub(crate) fn check_not_counted_twice(inputs: &serde_json::Value) -> Result<(), RunError> {
    let Some(counters) = inputs_of(inputs, "counters").next() else {
        return Ok(());
    };
    let counters = Path::new(counters["path"].as_str().unwrap_or_default());
    let Some((manifest, earlier)) = manifest_beside(counters) else {
        return Ok(());
    };
    let key =
        |e: &serde_json::Value| (e["sha256"].as_str().map(str::to_owned), e["bytes"].as_u64());
    let earlier_acts: HashSet<_> = inputs_of(&earlier["inputs"], "acts")
        .map(key)
        .filter(|(sha, bytes)| sha.is_some() && bytes.is_some())
        .collect();
    for acts in inputs_of(inputs, "acts") {
        if !earlier_acts.contains(&key(acts)) {
            continue;
        }
        let path = Path::new(acts["path"].as_str().unwrap_or_default());
        // Rows that read (a row rejected when read counted nothing: a standing file of
        // such rows is not refused). A file that no longer reads is the run's own concern.
        // Either decimal separator (`--decimal-comma` is the run's, not known here).
        let holds_rows = [false, true].into_iter().any(|decimal_comma| {
            let opts = ReadOptions {
                decimal_comma,
                ..ReadOptions::default()
            };
            read::Chunks::<Act>::open(path, &opts)
                .is_ok_and(|mut chunks| chunks.any(|c| c.is_ok_and(|c| !c.rows.is_empty())))
        });
        if holds_rows {
            return Err(RunError::Usage(format!(
                "{}: the run that wrote the counters {} read these acts already (the same SHA-256 in {}): they would count twice against the caps; pass the counters of the period before (nothing written)",
                path.display(),
                counters.display(),
                manifest.display()
            )));
        }
    }
    Ok(())
}

/// [`check_not_counted_twice`] before a run, so that a run refused for it is refused at once
/// instead of after computing everything: the acts files of `acts` whose size is that of an
/// acts file in the manifest beside `counters` are hashed (usually none: only the mistake
/// itself costs a read), then judged as at the end. Problems reading either are left to the
/// run, which reports them in their place.
pub fn check_not_counted_twice_before(acts: &Path, counters: &Path) -> Result<(), RunError> {
    let Some((_, earlier)) = manifest_beside(counters) else {
        return Ok(());
    };
    let sizes: HashSet<u64> = inputs_of(&earlier["inputs"], "acts")
        .filter_map(|e| e["bytes"].as_u64())
        .collect();
    let Ok(files) = read::resolve(acts) else {
        return Ok(());
    };
    let mut inputs =
        vec![serde_json::json!({"role": "counters", "path": counters.display().to_string()})];
    for file in files {
        if !std::fs::metadata(&file).is_ok_and(|m| sizes.contains(&m.len())) {
            continue;
        }
        if let Ok((sha256, bytes)) = crate::io::write::sha256_and_size(&file) {
            inputs.push(serde_json::json!({
                "role": "acts", "path": file.display().to_string(), "sha256": sha256, "bytes": bytes
            }));
        }
    }
    check_not_counted_twice(&serde_json::Value::Array(inputs))
}

/// The counters file holds the rows its manifest says were written (`written`, if it has one
/// beside it): a file cut at a row's end reads without an error, and its missing patients would
/// start the year with nothing used of their caps. Then its bytes are those written (when the
/// manifest has their SHA-256): a value edited in place, or another file of as many rows put in
/// its place, would start the year from counts no run made.
fn check_counter_rows(
    path: &Path,
    read: u64,
    written: Option<&WrittenCounters>,
) -> Result<(), RunError> {
    let Some(written) = written else {
        return Ok(());
    };
    if let Some(rows) = written.rows
        && rows != read
    {
        return Err(ReadError::CountersChanged {
            file: path.display().to_string(),
            read,
            written: rows,
        }
        .into());
    }
    if let Some(expected) = &written.sha256 {
        let (sha256, _) = crate::io::write::sha256_and_size(path)?;
        if sha256 != *expected {
            return Err(ReadError::CountersEdited {
                file: path.display().to_string(),
                manifest: path
                    .with_file_name(crate::io::write::MANIFEST_FILE)
                    .display()
                    .to_string(),
            }
            .into());
        }
    }
    Ok(())
}

/// Counters are never negative.
fn check_counters(path: &Path, counters: &[YearCounter]) -> Result<(), RunError> {
    if counters
        .iter()
        .any(|c| c.pf_used < Decimal::ZERO || c.franchise_used < Decimal::ZERO)
    {
        return Err(RunError::Usage(format!(
            "{}: negative counters",
            path.display()
        )));
    }
    Ok(())
}

/// The version of the counters' layout, written in every manifest. Format 2 added the
/// `stay_starts` column, format 3 `open_stays`, format 4 the part of the flat fee an open
/// stay's lines were charged (in `open_stays`, [`crate::model::StaySums::charged`]).
pub const COUNTERS_FORMAT: u64 = 4;

/// The counters' layouts a run accepts as opening state: format 3 is format 4 without the
/// part charged (read as none), format 2 format 3 without `open_stays`, format 1 format 2
/// without `stay_starts` (what they lack is unknown, as it was to the run that wrote them).
pub const COUNTERS_FORMATS_READ: [u64; 4] = [1, 2, 3, COUNTERS_FORMAT];

/// Whether the run has one worker (`--threads 1`, or a one-core machine): the stages that
/// otherwise run beside the pool (reading, loading partitions, writing) then run in line, on
/// the calling thread, so that the whole run uses one core.
pub(crate) fn single_threaded() -> bool {
    rayon::current_num_threads() == 1
}

/// Runs the engine on every patient, chunk by chunk, and hands each chunk's patients and
/// results, in order, to `f`, on the calling thread. While `f` takes a chunk, the pool
/// computes the next one: `f` (gathering the outcomes, handing them to the writer, which may
/// have to wait for room) otherwise left the pool without work. With one worker, one chunk
/// after the other.
pub fn for_each_chunk<E>(
    book: &RuleBook,
    prepared: &Prepared,
    mut f: impl FnMut(&[PatientActs], Vec<PatientResult>) -> Result<(), E>,
) -> Result<(), E> {
    let compute = |chunk: &[PatientActs]| -> Vec<PatientResult> {
        chunk
            .par_iter()
            .map(|p| engine::compute_patient(book, &prepared.input(p)))
            .collect()
    };
    let mut chunks = prepared.patients.chunks(CHUNK_PATIENTS);
    if single_threaded() {
        return chunks.try_for_each(|chunk| f(chunk, compute(chunk)));
    }
    let Some(mut chunk) = chunks.next() else {
        return Ok(());
    };
    let mut results = compute(chunk);
    loop {
        let next = chunks.next();
        let mut next_results = None;
        rayon::in_place_scope(|scope| {
            if let Some(next) = next {
                scope.spawn(|_| next_results = Some(compute(next)));
            }
            f(chunk, results)
        })?;
        match (next, next_results) {
            (Some(next), Some(next_results)) => (chunk, results) = (next, next_results),
            _ => return Ok(()),
        }
    }
}

/// What is kept across chunks: small per patient, never the outcomes.
#[derive(Debug, Default)]
struct State {
    closing: Vec<YearCounter>,
    rejects: Vec<Reject>,
    computed: u64,
}

impl State {
    /// Splits a chunk's results into outcomes, rejects and closing counters.
    fn absorb(
        &mut self,
        prepared: &Prepared,
        chunk: &[PatientActs],
        results: Vec<PatientResult>,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(chunk.iter().map(|p| p.acts.len()).sum());
        for (p, r) in chunk.iter().zip(results) {
            for rej in r.rejected {
                let origin = prepared.origins_of(p)[rej.index];
                self.rejects.push(Reject {
                    file: prepared.act_files[origin.file as usize].clone(),
                    row: origin.row,
                    act_id: prepared.acts_of(p)[rej.index].act_id.to_string(),
                    column: rej.column.into(),
                    reason: rej.reason.into(),
                    value: rej.value,
                });
            }
            self.computed += r.outcomes.len() as u64;
            outcomes.extend(r.outcomes);
            self.closing.extend(r.closing);
        }
        outcomes
    }

    /// Patients without acts this run keep their opening state for the next run; rejects in
    /// file and row order.
    fn finish(&mut self, prepared: &Prepared) {
        let with_acts: HashSet<&str> = prepared
            .patients
            .iter()
            .map(|p| p.patient_id.as_str())
            .collect();
        for (patient, counters) in &prepared.opening {
            if !with_acts.contains(patient.as_str()) {
                self.closing.extend(counters.iter().cloned());
            }
        }
        self.closing
            .sort_by(|a, b| (&a.patient_id, a.year).cmp(&(&b.patient_id, b.year)));
        self.rejects.extend(prepared.rejects.iter().cloned());
        self.rejects.sort_by(Reject::order);
    }
}

/// Every outcome in memory, for small runs (`validate`, tests).
#[derive(Debug, Default)]
pub struct Computed {
    /// Outcomes, by patient then (`care_date`, `act_id`).
    pub outcomes: Vec<Outcome>,
    /// Closing counters of every patient seen (acts or opening counters), sorted.
    pub closing: Vec<YearCounter>,
    /// Input rejects plus the engine's, in file and row order.
    pub rejects: Vec<Reject>,
    /// Act rows read: always `outcomes.len()` + act rows in `rejects`.
    pub read: u64,
}

/// Computes everything and keeps it in memory.
pub fn compute(book: &RuleBook, prepared: &Prepared) -> Computed {
    let mut state = State::default();
    let mut outcomes = Vec::new();
    let _ = for_each_chunk(book, prepared, |chunk, results| {
        outcomes.extend(state.absorb(prepared, chunk, results));
        Ok::<(), ()>(())
    });
    state.finish(prepared);
    Computed {
        outcomes,
        closing: state.closing,
        rejects: state.rejects,
        read: prepared.read,
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub read: u64,
    pub computed: u64,
    /// Act rows rejected.
    pub rejected: u64,
    /// Beneficiaries and rights rows rejected.
    pub other_rejected: u64,
    pub discrepancies: Option<u64>,
    pub totals: Totals,
    /// The month × category × situation summary, as written.
    pub summary: Vec<SummaryRow>,
    pub out: PathBuf,
    pub seconds: f64,
}

impl RunSummary {
    /// SPEC §1: 0 when every row was computed, 3 when some were rejected.
    pub fn exit_code(&self) -> i32 {
        if self.rejected + self.other_rejected > 0 {
            3
        } else {
            0
        }
    }
}

/// How a run is written.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub out: PathBuf,
    pub format: Format,
    pub command: String,
    pub argv: Vec<String>,
    /// `audit`: what to compare the recorded amount with, and the tolerance.
    pub audit: Option<(Compare, Decimal)>,
    /// What the input profile reported (for the manifest).
    pub profile: serde_json::Value,
    /// Draw a progress bar on stderr (a terminal, or `--progress`).
    pub progress: bool,
    /// How often a partitioned run logs how far its long steps are (`--log-every`); `None`:
    /// never.
    pub log_every: Option<std::time::Duration>,
    /// The acts' columns carried through to `acts.*` after SPEC §4's (`--keep-columns`): the
    /// names read with ([`crate::io::read::ReadOptions::carried`]).
    pub carried: std::sync::Arc<[String]>,
    /// Write the tables (`acts`, `patients`, `counters`, `summary`); without them (`validate`,
    /// a check) the folder holds `rejects.csv` and the manifest, and the acts are computed
    /// and summed but not encoded.
    pub tables: bool,
}

/// Computes every patient of `prepared` (read whole, in memory) and writes every output of
/// SPEC §4 into `out`, atomically: the outcomes stream through the writers chunk by chunk.
pub fn execute(
    book: &RuleBook,
    prepared: &Prepared,
    opts: &RunOptions,
    started: Instant,
) -> Result<RunSummary, RunError> {
    let total = prepared.acts.len() as u64;
    let mut sink = Sink::begin(book, opts, total, &prepared.files)?;
    sink.partition(prepared)?;
    sink.finish(prepared.read, started)
}

/// Inputs of a test, as CSV texts written to `dir`: acts (`acts.csv`), beneficiaries, and the
/// rights and counters when given.
#[cfg(test)]
pub(crate) fn csv_inputs(
    dir: &Path,
    acts: &str,
    beneficiaries: &str,
    rights: Option<&str>,
    counters: Option<&str>,
) -> Inputs {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Inputs {
        acts: write("acts.csv", acts),
        beneficiaries: write("beneficiaries.csv", beneficiaries),
        rights: rights.map(|text| write("rights.csv", text)),
        counters: counters.map(|text| write("counters.csv", text)),
        read: ReadOptions::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::{IdsChecked, Prepared, Sourced, assemble, patient_day, permute};
    use crate::model::{Act, Beneficiary, Category, Regime};
    use chrono::NaiveDate;
    use rust_decimal::Decimal;

    /// A beneficiary born on 1980-01-01, general regime.
    fn add_beneficiary(base: &mut Prepared, id: &str) {
        let ben = Beneficiary {
            patient_id: id.into(),
            birth_date: NaiveDate::from_ymd_opt(1980, 1, 1).unwrap(),
            regime: Regime::General,
        };
        base.beneficiaries.insert(id.into(), ben);
    }

    /// `n` patients with one act each, grouped.
    fn patients(n: usize) -> Prepared {
        let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let mut base = Prepared::default();
        let mut rows = Vec::new();
        for i in 0..n {
            let id = format!("p{i:05}");
            add_beneficiary(&mut base, &id);
            let act = Act::new(
                &format!("a{i}"),
                &id,
                day,
                Category::Consultation,
                Decimal::TEN,
            );
            rows.push(Sourced {
                file: 0,
                row: i as u64 + 1,
                value: act,
            });
        }
        assemble(base, rows, None, IdsChecked::Here).unwrap()
    }

    #[test]
    fn chunks_reach_f_in_order_with_their_results_and_stop_at_an_error() {
        let book = crate::rules::RuleBook::builtin();
        let prepared = patients(2 * super::CHUNK_PATIENTS + 5);
        let mut seen = Vec::new();
        super::for_each_chunk(&book, &prepared, |chunk, results| {
            assert_eq!(chunk.len(), results.len());
            for (p, r) in chunk.iter().zip(&results) {
                assert_eq!(r.outcomes.len(), 1);
                assert_eq!(r.outcomes[0].patient_id, p.patient_id);
                seen.push(p.patient_id.clone());
            }
            Ok::<(), ()>(())
        })
        .unwrap();
        let all: Vec<String> = prepared
            .patients
            .iter()
            .map(|p| p.patient_id.clone())
            .collect();
        assert_eq!(seen, all);
        // An error ends the run: no chunk after it reaches `f`.
        let mut calls = 0;
        let result = super::for_each_chunk(&book, &prepared, |_, _| {
            calls += 1;
            if calls == 2 { Err("stop") } else { Ok(()) }
        });
        assert_eq!(result, Err("stop"));
        assert_eq!(calls, 2);
    }

    #[test]
    fn assemble_orders_acts_by_patient_date_then_id() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2024, 3, d).unwrap();
        let mut base = Prepared::default();
        for id in ["p1", "p2"] {
            add_beneficiary(&mut base, id);
        }
        // Same patient and day: ids that differ past their first 16 bytes, one that is
        // another's prefix, and ids that differ early; given in no order.
        let acts = [
            ("p2", 5, "B"),
            ("p1", 5, "ACT-2024-0000000002"),
            ("p1", 5, "ACT-2024-00000000"),
            ("p1", 4, "Z"),
            ("p1", 5, "ACT-2024-0000000001"),
            ("p1", 5, "ACT-2024-00000000\u{0}"),
            ("p1", 5, "ACT-2023"),
            ("p2", 5, "A"),
        ];
        let rows: Vec<Sourced<Act>> = acts
            .iter()
            .enumerate()
            .map(|(i, &(patient, d, id))| Sourced {
                file: 0,
                row: i as u64 + 1,
                value: Act::new(id, patient, day(d), Category::Consultation, Decimal::ONE),
            })
            .collect();
        let prepared = assemble(base, rows, None, IdsChecked::Here).unwrap();
        let order: Vec<(&str, &str)> = prepared
            .acts
            .iter()
            .map(|a| (a.patient_id.as_str(), a.act_id.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("p1", "Z"),
                ("p1", "ACT-2023"),
                ("p1", "ACT-2024-00000000"),
                ("p1", "ACT-2024-00000000\u{0}"),
                ("p1", "ACT-2024-0000000001"),
                ("p1", "ACT-2024-0000000002"),
                ("p2", "A"),
                ("p2", "B"),
            ]
        );
        let rows_kept: Vec<u64> = prepared.origins.iter().map(|o| o.row).collect();
        assert_eq!(rows_kept, [4, 7, 3, 6, 5, 2, 8, 1]);
    }

    #[test]
    fn permute_puts_each_item_at_its_place() {
        // Every permutation of five items, and a long one made of many cycles.
        let mut places: Vec<Vec<u32>> = vec![vec![]];
        for n in 0..5u32 {
            places = places
                .into_iter()
                .flat_map(|p| {
                    (0..=p.len()).map(move |at| {
                        let mut q = p.clone();
                        q.insert(at, n);
                        q
                    })
                })
                .collect();
        }
        assert_eq!(places.len(), 120);
        places.push((0..1000u32).map(|i| (i * 7 + 3) % 1000).collect());
        for place in places {
            let items: Vec<String> = (0..place.len()).map(|i| format!("item {i}")).collect();
            let mut permuted = items.clone();
            permute(&mut permuted, place.clone());
            for (i, item) in items.iter().enumerate() {
                assert_eq!(&permuted[place[i] as usize], item, "{place:?}");
            }
        }
    }

    #[test]
    fn permute_drops_each_item_once_and_moves_nothing_on_a_bad_place() {
        use std::cell::Cell;
        use std::rc::Rc;
        /// An item that counts its drops.
        struct Counted(u32, Rc<Cell<usize>>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.1.set(self.1.get() + 1);
            }
        }
        let drops = Rc::new(Cell::new(0));
        let items =
            |n: u32| -> Vec<Counted> { (0..n).map(|i| Counted(i, drops.clone())).collect() };
        let place: Vec<u32> = (0..97u32).map(|i| (i * 13 + 5) % 97).collect();
        let mut permuted = items(97);
        permute(&mut permuted, place.clone());
        assert_eq!(drops.get(), 0, "nothing dropped while moving");
        for (i, &to) in place.iter().enumerate() {
            assert_eq!(permuted[to as usize].0, i as u32);
        }
        drop(permuted);
        assert_eq!(drops.get(), 97);
        // Not a permutation: a repeated place, a place out of range, one place too few.
        for bad in [
            vec![0, 0, 1],
            vec![0, 3, 1],
            vec![u32::MAX, 0, 1],
            vec![1, 0],
        ] {
            drops.set(0);
            let mut kept = items(3);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                permute(&mut kept, bad.clone())
            }));
            assert!(result.is_err(), "{bad:?} accepted");
            assert_eq!(drops.get(), 0, "{bad:?}: an item was dropped");
            assert_eq!(
                kept.iter().map(|c| c.0).collect::<Vec<_>>(),
                [0, 1, 2],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn packed_patient_day_sorts_like_the_pair() {
        let dates = [
            NaiveDate::from_ymd_opt(-3, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(1, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
            NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
            NaiveDate::from_ymd_opt(9999, 12, 31).unwrap(),
        ];
        let mut pairs = Vec::new();
        for rank in [0, 1, 7, u32::MAX] {
            for date in dates {
                pairs.push((rank, date));
            }
        }
        let mut by_pair = pairs.clone();
        by_pair.sort();
        let mut by_key = pairs;
        by_key.sort_by_key(|&(rank, date)| patient_day(rank, date));
        assert_eq!(by_key, by_pair);
        // The rank is the high half.
        assert_eq!(patient_day(7, dates[2]) >> 32, 7);
    }
}
