//! Runs larger than memory: every input table is read as a stream of chunks and routed to
//! partitions (ranges of `patient_id`, see [`super::partition`]), held in memory up to a
//! budget and spilled to Arrow IPC files past it; the partitions are then computed one at a
//! time, in id order, each with only its own rows in memory, and their rows streamed into
//! the outputs. The outputs are the bytes an in-memory run writes. A partition that turns
//! out far fuller than planned is cut into smaller ranges before it is loaded
//! ([`cut_partition`]).
//!
//! Duplicate `act_id`s may sit in two partitions (two patients): the ids are also routed by a
//! hash of the id, and each of those buckets finds its duplicates (the first row in file and
//! row order is kept) before any partition is computed.

// FxHash: the keys are ids from our own inputs, and SipHash was ~3 % of a run.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use chrono::Datelike;
use rayon::prelude::*;

use super::cpu;
use super::direct_io::SpillIo;
use super::pages;
use super::partition::{self, Plan, Sampler};
use super::rejects::{self, RejectStore};
use super::sink::Sink;
use super::spill::{
    self, ActRow, IdHash, IdRow, Partitioned, SpillCompression, SpillError, Spillable, Spilled,
    Stored,
};
use super::{
    IdsChecked, Inputs, Origin, Prepared, RunError, RunOptions, RunSummary, assemble,
    check_counter_rows, check_counter_years, check_counters, check_manifest, group_counters,
    group_rights, index_beneficiaries,
};
use crate::io::read::{self, ActKey, Chunks, PatientKey, ReadOptions, Sourced};
use crate::io::temp::{TempError, TempSpace, free_bytes};
use crate::model::{Act, Beneficiary, Id, Reject, RightPeriod, YearCounter};
use crate::rules::RuleBook;

impl From<SpillError> for RunError {
    fn from(e: SpillError) -> RunError {
        RunError::Spill(e.to_string())
    }
}

/// How much memory a run may use, and where it spills.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes (`--memory-limit`).
    pub memory: u64,
    /// Partitions to use, instead of the number the memory limit asks for (tests, tuning).
    pub parts: Option<usize>,
    /// The acts are declared sorted by `patient_id` (`--sorted`): they are streamed, one
    /// partition after the other, instead of spilled; a row out of order fails the run.
    pub sorted: bool,
    /// How spill files reach the disk (`--spill-io`).
    pub spill_io: SpillIo,
    /// Whether spill files are compressed (`--spill-compression`); `None` (`auto`): as
    /// little as the spill disk's room allows ([`auto_compression`]).
    pub spill_compression: Option<SpillCompression>,
    /// Where spill files go (`--temp-dir`): a folder of this run's is made there. `None`:
    /// in the temporary output folder beside `--out`.
    pub temp_dir: Option<PathBuf>,
}

/// A `--temp-dir` that is no folder, or one this run may not write, is the configuration's to
/// change (exit 2); a disk that fails is not (exit 1).
fn temp_error(e: TempError) -> RunError {
    match e {
        TempError::NotAFolder { .. } => RunError::Usage(e.to_string()),
        TempError::Io { ref error, .. } if crate::io::is_denied(error) => {
            RunError::Usage(e.to_string())
        }
        TempError::Io { .. } => RunError::Spill(e.to_string()),
    }
}

/// The run's spill folder, and how its files reach the disk.
struct SpillDir {
    path: PathBuf,
    io: SpillIo,
    compression: SpillCompression,
}

impl SpillDir {
    /// A store of `parts` partitions spilling here.
    fn store<T: Spillable>(&self, parts: usize, budget: usize) -> Partitioned<T> {
        Partitioned::new(&self.path, parts, budget)
            .with_io(self.io)
            .with_compression(self.compression)
    }

    /// The folder `name` inside this one.
    fn sub(&self, name: &str) -> SpillDir {
        SpillDir {
            path: self.path.join(name),
            io: self.io,
            compression: self.compression,
        }
    }

    /// Removes the folder and what is left in it, if it was made.
    fn remove(&self) -> Result<(), SpillError> {
        if self.path.exists() {
            std::fs::remove_dir_all(&self.path).map_err(|e| SpillError {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// Where a run reports its steps: step, message, counts.
pub type Log<'a> = dyn Fn(&str, &str, &[(&str, u64)]) + 'a;

/// Log lines that say how far a long step is, one at most every `every`
/// ([`RunOptions::log_every`]): a run without a terminal (cron, a scheduler) shows it is alive
/// and how fast it goes. On the thread that drives the step.
struct Heartbeat<'l, 'a> {
    log: &'l Log<'a>,
    step: &'static str,
    message: &'static str,
    every: Option<Duration>,
    started: Instant,
    last: Instant,
}

impl<'l, 'a> Heartbeat<'l, 'a> {
    fn new(
        log: &'l Log<'a>,
        (step, message): (&'static str, &'static str),
        every: Option<Duration>,
    ) -> Heartbeat<'l, 'a> {
        let now = Instant::now();
        Heartbeat {
            log,
            step,
            message,
            every,
            started: now,
            last: now,
        }
    }

    /// Logs `done` (with its rate per second since the step began) and `counts`, if the last
    /// line is `every` old.
    fn beat(&mut self, done: (&str, u64), counts: &[(&str, u64)]) {
        let Some(every) = self.every else { return };
        if self.last.elapsed() < every {
            return;
        }
        self.last = Instant::now();
        let seconds = self.started.elapsed().as_secs_f64();
        let per_second = if seconds > 0.0 {
            (done.1 as f64 / seconds) as u64
        } else {
            0
        };
        let mut all = vec![done, ("per_second", per_second)];
        all.extend_from_slice(counts);
        (self.log)(self.step, self.message, &all);
    }
}

/// Most bytes of rows buffered while reading, whatever the limit: past it, the cost of fresh
/// memory (page faults, zeroing) exceeds the cost of writing the spill files (10 M acts: 24 s
/// with 43 MiB buffers, 29 s with 2 GiB). Between 16 and 64 MiB the time does not change
/// measurably (10 M acts, 3-run medians 17.9–19.3 s), and 32 MiB rather than 64 lowers the
/// peak RSS from 553 to 447 MiB. (Measured while the spill files went through the page
/// cache; 32 MiB makes the acts' direct writes about 130 KiB per partition and spill.)
const READ_BUFFER_MAX: u64 = 32 << 20;

/// Rows per read chunk when sorted acts are streamed: there the chunks being read sit in
/// memory beside the partitions being computed and written. 16 384 rather than the default
/// 65 536: peak RSS 607–643 → 534–567 MiB on 10 M sorted acts, the time the same within the
/// noise (four runs each, medians 18.2 and 19.0 s). The spilled path keeps the default: it
/// was slower there (four runs each, user CPU 34 vs 30 s).
const STREAM_CHUNK_ROWS: usize = 16_384;

/// Ids kept per partition to place the boundaries.
const SAMPLE_PER_PART: usize = 64;

/// The first acts whose patients are looked up among the beneficiaries (shared equally by
/// the acts files judged, [`head_files`]): where those not there would fill more than a
/// partition's share, the acts' patients place the boundaries.
const ACT_HEAD_ROWS: usize = 1 << 16;

/// The acts files whose first acts are judged, at most: a file of other patients among
/// twelve monthly ones shows, but a thousand small files are not all opened.
const HEAD_FILES: usize = 64;

/// The acts files whose first acts are judged: every one up to [`HEAD_FILES`], else that
/// many spread evenly over them (the first always).
fn head_files(files: usize) -> Vec<usize> {
    let judged = files.clamp(1, HEAD_FILES);
    (0..judged).map(|i| i * files / judged).collect()
}

/// Computes a run whose inputs may be larger than memory: one partition (everything in
/// memory, [`super::execute`]) when the acts fit in a partition's share of the limit (a
/// quarter with one loader, [`partition::parts_for`]), else as many as needed.
pub fn run(
    book: &RuleBook,
    inputs: &Inputs,
    opts: &RunOptions,
    limits: &Limits,
    started: Instant,
    log: &Log<'_>,
) -> Result<RunSummary, RunError> {
    let expected = partition::estimate_rows(&inputs.acts)?;
    let rows = expected.rows;
    // Before the run's memory is touched: huge pages only where they pay (pages.rs).
    let huge_pages_variable = std::env::var_os(pages::HUGE_PAGES_VARIABLE);
    if pages::keep_huge_pages(rows, huge_pages_variable.as_deref()).map_err(RunError::Usage)? {
        log("read", "transparent huge pages kept", &[("huge_pages", 1)]);
    } else if pages::turn_off_huge_pages() {
        log("read", "transparent huge pages off", &[("huge_pages", 0)]);
    }
    // An acts file that cannot be read is reported when it is read, in its turn.
    let carried = partition::carried_bytes_per_act(&inputs.acts, &inputs.read).unwrap_or(0);
    let act_cost = partition::act_cost(carried);
    let loaders = partition::loaders_for(rayon::current_num_threads());
    let parts = match limits.parts {
        Some(parts) => parts,
        // Held in memory (one partition, no loader beside it) if the acts fit in a quarter
        // of the limit, whatever the loaders; else partitions sized for them.
        None if partition::parts_for(rows, limits.memory, act_cost, 1) <= 1 => 1,
        None => {
            let wanted = partition::parts_for(rows, limits.memory, act_cost, loaders);
            match spill::allow_open_files(spill::files_needed(wanted)) {
                Ok(()) => wanted,
                // Fewer, if the partitions asked for speed are what the limit refuses.
                Err(limit) => {
                    let for_memory =
                        partition::parts_for_memory(rows, limits.memory, act_cost, loaders);
                    let fitted = partition::parts_within_open_files(
                        wanted,
                        for_memory,
                        limit,
                        spill::files_needed,
                    );
                    if fitted != wanted {
                        log(
                            "read",
                            "too few open files allowed for the partitions asked for speed: fewer",
                            &[
                                ("partitions", fitted as u64),
                                ("partitions_asked", wanted as u64),
                                ("open_file_limit", limit),
                            ],
                        );
                    }
                    fitted
                }
            }
        }
    };
    if parts <= 1 && !limits.sorted {
        // It makes no folder there: a folder it may not list is the configuration's to fix
        // (exit 2), any other failure to clean is told and the run goes on.
        if let Some(dir) = &limits.temp_dir {
            match TempSpace::clean(dir).map_err(temp_error) {
                Err(RunError::Spill(message)) => {
                    log("read", &format!("left as it was: {message}"), &[])
                }
                other => other?,
            }
        }
        log("read", "reading inputs", &[("acts_expected", rows)]);
        let prepared = super::prepare(inputs)?;
        log(
            "compute",
            "computing and writing",
            &[("patients", prepared.patients.len() as u64)],
        );
        let summary = super::execute(book, &prepared, opts, started)?;
        // The process ends soon after: freeing every row one by one would only delay it.
        std::mem::forget(prepared);
        return Ok(summary);
    }

    // Each partition holds a spill file open while a table is routed.
    let needed = spill::files_needed(parts);
    spill::allow_open_files(needed).map_err(|limit| {
        let fewer = match limits.parts {
            Some(_) => "fewer --partitions",
            None => "a larger --memory-limit",
        };
        let (partitions, need) = if parts == 1 {
            ("partition", "needs")
        } else {
            ("partitions", "need")
        };
        RunError::Usage(format!(
            "{parts} {partitions} {need} {needed} open files (a spill file each), over this system's limit of {limit} (ulimit -n): raise the hard limit, or give {fewer}"
        ))
    })?;
    let staging = crate::io::write::Staging::begin(&opts.out)?;
    // Dropped before the staging (declared after it): on a failure both are removed.
    let temp_space = match &limits.temp_dir {
        Some(dir) => Some(TempSpace::create(dir).map_err(temp_error)?),
        None => None,
    };
    let spill_path = match &temp_space {
        Some(space) => space.path().join("spill"),
        None => staging.path().join(".spill"),
    };
    // Rejects past their share of the limit are sorted into files beside the spill's (the
    // folder stays until `rejects.csv` is written, after the spill folder is gone).
    let mut rejects = RejectStore::spilling(
        spill_path.with_file_name(match &temp_space {
            Some(_) => "rejects",
            None => ".rejects",
        }),
        rejects::budget(limits.memory),
    );
    // Where the spill goes, and the room there (judged again once the acts begin to spill:
    // [`Room`]; a run that fills the disk anyway fails, exit 1).
    let parent = spill_path.parent().unwrap_or(&spill_path);
    let free = free_bytes(parent);
    let free_field: Vec<(&str, u64)> = free.map(|free| ("free_bytes", free)).into_iter().collect();
    log(
        "read",
        &format!("spill files in {}", spill_path.display()),
        &free_field,
    );
    // The disk is named as the user gave it: --temp-dir, or the folder of --out (`.` for a
    // bare name); its room is read in the spill folder's parent, which exists.
    let shown = match (&limits.temp_dir, staging.path().parent()) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        (None, _) => PathBuf::from("."),
    };
    // `auto` is decided once the acts are known not to be sorted (below); until then, and for
    // sorted ones (only the small tables spill), the files are as they are.
    let mut spill = SpillDir {
        path: spill_path.clone(),
        io: limits.spill_io,
        compression: limits.spill_compression.unwrap_or_default(),
    };
    // While reading, the rows held for one table at a time take at most a sixth of the limit
    // (their vectors' capacity counted; one read chunk, if a chunk alone is more), and no more
    // than READ_BUFFER_MAX; the act ids a quarter of that. Beside them, two sets of their
    // encoded batches at most: one being written by the spill thread, one waiting for it.
    let budget = (limits.memory / 6).min(READ_BUFFER_MAX) as usize;
    let mut files: Vec<(&'static str, String)> = Vec::new();
    // Rejected act rows so far (the rows of the other files are counted by the store).
    let mut rejected_acts = 0u64;

    // Acts sorted by patient (declared, or found so by a first pass that stops at the first
    // row out of order) are streamed instead of spilled.
    let order = if limits.sorted {
        Order::Declared
    } else {
        Order::Detect
    };
    let bar = progress_bar(opts.progress, rows, "first pass");
    // The small tables are routed after the acts' first pass (which decides the partitions).
    // Should it fail, they are read first, so that their error is reported before the acts',
    // as in a run held in memory.
    let beat = Heartbeat::new(log, ("read", "first pass over the acts"), opts.log_every);
    // The acts' patients place the boundaries when sorted acts give them all, or when the
    // beneficiaries are not theirs (from the ids of a file of another month, one partition
    // held 9.7 M of a run's 10 M acts). Sized for the streamed partitions, smaller.
    let sample =
        parts.max(partition::parts_for_stream(rows, limits.memory, act_cost)) * SAMPLE_PER_PART;
    let mut act_patients = Sampler::new(sample);
    let mut head = Vec::new();
    let first = first_pass(
        inputs,
        &spill,
        (parts, budget),
        order,
        (&mut act_patients, &mut head),
        beat,
        bar,
    );
    let repeated = match first {
        Ok(repeated) => repeated,
        Err(error) => return Err(small_tables_error(inputs).unwrap_or(error)),
    };
    // Streamed, sorted acts spill nothing: smaller partitions then only lower what is held
    // at once, if the open-file limit allows their small tables' spill files.
    let parts = match (&repeated, limits.parts) {
        (Some(_), None) => {
            let streamed = partition::parts_for_stream(rows, limits.memory, act_cost);
            let needed = spill::files_needed(streamed);
            match spill::allow_open_files(needed) {
                Ok(()) => streamed,
                Err(limit) => {
                    log(
                        "read",
                        "too few open files allowed for smaller partitions: keeping the planned ones",
                        &[
                            ("partitions", streamed as u64),
                            ("files_needed", needed),
                            ("open_file_limit", limit),
                        ],
                    );
                    parts
                }
            }
        }
        _ => parts,
    };

    // Beneficiaries: a first pass samples the ids (only that column) to place the boundaries,
    // the second routes the rows.
    log(
        "read",
        "sampling patient ids",
        &[("acts_expected", rows), ("partitions", parts as u64)],
    );
    let mut sampler = Sampler::new(parts * SAMPLE_PER_PART);
    // The first acts' patients (unsorted acts), found among the beneficiaries or not.
    let mut found: HashMap<Id, (u64, bool)> = HashMap::default();
    if repeated.is_none() {
        for id in head.drain(..) {
            found.entry(id).or_default().0 += 1;
        }
    }
    drop(head);
    for chunk in Chunks::<PatientKey>::open(&inputs.beneficiaries, &inputs.read)? {
        for r in &chunk?.rows {
            sampler.add(&r.value.patient_id);
            if let Some((_, seen)) = found.get_mut(r.value.patient_id.as_str()) {
                *seen = true;
            }
        }
    }
    let judged: u64 = found.values().map(|(acts, _)| acts).sum();
    let missing: u64 = found
        .values()
        .filter(|(_, seen)| !seen)
        .map(|(acts, _)| acts)
        .sum();
    drop(found);
    // The acts' patients place the boundaries when sampled; ranges crowded with beneficiaries
    // (ids in other ranges than the acts') are then cut further, if the open files allow.
    let by_acts = |acts: Sampler, sampler: Sampler| {
        let plan = Plan::from_sample(acts, parts);
        let split = plan.clone().split_crowded(sampler, parts);
        if split.parts() == plan.parts() {
            return split;
        }
        match spill::allow_open_files(spill::files_needed(split.parts())) {
            Ok(()) => split,
            Err(limit) => {
                log(
                    "read",
                    "too few open files allowed to cut the ranges crowded with beneficiaries",
                    &[
                        ("partitions", split.parts() as u64),
                        ("open_file_limit", limit),
                    ],
                );
                plan
            }
        }
    };
    let plan = match &repeated {
        // Sorted: the first pass sampled every act's patient.
        Some(_) => by_acts(act_patients, sampler),
        // Acts of unknown patients would fill more than a partition's share.
        None if missing * parts as u64 > judged => {
            log(
                "read",
                "the first acts' patients are not all among the beneficiaries: partitions placed by the acts' patients",
                &[("acts_judged", judged), ("patients_missing", missing)],
            );
            match sample_act_patients(inputs, parts * SAMPLE_PER_PART) {
                Ok(acts) => by_acts(acts, sampler),
                Err(error) => return Err(small_tables_error(inputs).unwrap_or(error)),
            }
        }
        None => Plan::from_sample(sampler, parts),
    };
    let parts = plan.parts();
    log(
        "read",
        "partitioning inputs",
        &[("partitions", parts as u64)],
    );

    if repeated.is_none() && limits.spill_compression.is_none() {
        let room = SpillRoom {
            free: free_bytes(parent),
            shown: &shown,
        };
        let stores = SpillStores {
            parts,
            budget,
            carried,
        };
        spill.compression = auto_compression(inputs, expected, stores, room, log);
    }
    let mut bens = spill.store::<Sourced<Beneficiary>>(parts, budget);
    let chunks = Chunks::<Beneficiary>::open(&inputs.beneficiaries, &inputs.read)?;
    let ben_files = chunks.files().to_vec();
    files.extend(ben_files.iter().map(|f| ("beneficiaries", f.clone())));
    for chunk in chunks {
        let chunk = chunk?;
        let n = chunk.rejects.len() as u64;
        rejects.add(chunk.rejects, n)?;
        let parts = parts_of(false, &plan, &chunk.rows, |r| &r.value.patient_id);
        bens.push_chunk(chunk.rows, parts)?;
    }
    let mut bens = bens.finish()?;

    let mut rights = spill.store::<RightPeriod>(parts, budget);
    if let Some(path) = &inputs.rights {
        let chunks = Chunks::<RightPeriod>::open(path, &inputs.read)?;
        files.extend(chunks.files().iter().map(|f| ("rights", f.clone())));
        for chunk in chunks {
            let chunk = chunk?;
            let n = chunk.rejects.len() as u64;
            rejects.add(chunk.rejects, n)?;
            let rows: Vec<RightPeriod> = chunk.rows.into_iter().map(|r| r.value).collect();
            let parts = parts_of(false, &plan, &rows, |r| &r.patient_id);
            rights.push_chunk(rows, parts)?;
        }
    }
    let mut rights = rights.finish()?;

    let mut counters = spill.store::<YearCounter>(parts, budget);
    let mut counter_years: Vec<i32> = Vec::new();
    if let Some(path) = &inputs.counters {
        for values in checked_counters(path)? {
            let values = values?;
            counter_years.extend(values.iter().map(|c| c.year));
            let parts = parts_of(false, &plan, &values, |c| &c.patient_id);
            counters.push_chunk(values, parts)?;
        }
        counter_years.sort_unstable();
        counter_years.dedup();
        files.push(("counters", path.display().to_string()));
    }
    let mut counters = counters.finish()?;

    if let Some(repeated) = repeated {
        let routed = Routed {
            plan: &plan,
            loaders: SmallTables {
                bens: &mut bens,
                rights: &mut rights,
                counters: &mut counters,
                counters_file: inputs.counters.as_deref(),
            },
            ben_files: &ben_files,
            counter_years: &counter_years,
            rejects,
            files,
            expected,
        };
        return stream_sorted(
            book, inputs, opts, staging, &spill, routed, repeated, order, started, log,
        );
    }
    log(
        "read",
        "acts not sorted by patient_id: partitioning them",
        &[("partitions", parts as u64)],
    );

    // Acts, and their ids routed by a hash of the id.
    let mut acts = spill.store::<ActRow>(parts, budget);
    // An id row is an eighth of an act row: as many buckets as partitions would be small.
    let id_buckets = id_buckets(parts);
    let mut ids = spill.store::<IdRow>(id_buckets, id_budget(budget));
    let chunks = read::open_acts(&inputs.acts, &inputs.read)?;
    let act_files = chunks.files().to_vec();
    files.extend(act_files.iter().map(|f| ("acts", f.clone())));
    let mut read_rows = 0u64;
    let mut last_year: Option<i32> = None;
    // With more than one worker, one thread reads the next chunk while this one routes the
    // last (and encodes the batches the spill thread writes). The rows stay in their chunk
    // until they are spilled: routing them is a partition number each (worked out on the
    // pool only with more than one loader: `route_on_pool` below).
    let bar = progress_bar(opts.progress, rows, "read");
    let mut beat = Heartbeat::new(log, ("read", "reading acts"), opts.log_every);
    let mut room = Room {
        disk: parent,
        shown: &shown,
        expected,
        compression: spill.compression,
        judged: false,
    };
    let mut accepted = 0u64;
    // With more workers than a loader keeps busy, the partition and id bucket of each act are
    // worked out on the pool: on this thread they held the reading back (100 M acts on 2
    // workers: 14 s of its CPU in a reading of 44 s, the rest of the reading's 82 s of CPU
    // on the other threads). With fewer, the pool is busy converting the next chunk and this
    // thread's work is no floor: on the pool, whole runs of 10 M acts on 2 workers took
    // 13.6–14.1 s against 13.4–14.0 s (six alternated pairs; this thread's CPU in the
    // reading 1.3 → 0.27 s).
    let route_on_pool = loaders > 1;
    let (reading, read_cpu, routing_cpu) = (Instant::now(), cpu::process_ns(), cpu::thread_ns());
    std::thread::scope(|scope| -> Result<(), RunError> {
        for chunk in produce(scope, "rac-reader", 1, chunks)? {
            let chunk = chunk?;
            read_rows += chunk.read;
            bar.inc(chunk.read);
            beat.beat(("acts_read", read_rows), &[("acts_expected", rows)]);
            // Rows, not rejects: `validate` gives a reject per problem of a row.
            rejected_acts += chunk.read - chunk.rows.len() as u64;
            rejects.add(chunk.rejects, 0)?;
            let file = chunk.file as u32;
            let act_parts = parts_of(route_on_pool, &plan, &chunk.rows, |act| {
                &act.value.patient_id
            });
            let (id_rows, id_parts): (Vec<IdRow>, Vec<u32>) =
                route_pairs(route_on_pool, &chunk.rows, |act| {
                    let id = &act.value.act_id;
                    let origin = Origin { file, row: act.row };
                    ((id.clone(), origin), id_bucket(id, id_buckets) as u32)
                });
            let years = chunk.rows.iter().map(|act| act.value.care_date.year());
            last_year = last_year.max(years.max());
            accepted += chunk.rows.len() as u64;
            ids.push_chunk(id_rows, id_parts)?;
            acts.push_chunk(chunk.rows, act_parts)?;
            let read = (read_rows, accepted);
            room.judge(read, acts.written(), ids.written(), log)?;
        }
        Ok(())
    })?;
    drop(bar);
    let mut acts = acts.finish()?;
    // The routing thread's CPU time near the phase's time: it held the reading back.
    log(
        "read",
        "acts partitioned",
        &[
            ("read_ms", reading.elapsed().as_millis() as u64),
            (
                "cpu_ms",
                cpu::process_ns().saturating_sub(read_cpu) / 1_000_000,
            ),
            (
                "routing_cpu_ms",
                cpu::thread_ns().saturating_sub(routing_cpu) / 1_000_000,
            ),
        ],
    );
    if let Some(path) = &inputs.counters {
        check_counter_years(path, last_year, counter_years.iter().copied())?;
    }

    // Duplicate ids, whatever their partitions.
    log(
        "read",
        "looking for repeated act ids",
        &[("id_buckets", id_buckets as u64)],
    );
    let mut duplicates = RowSet::default();
    let mut beat = Heartbeat::new(
        log,
        ("read", "looking for repeated act ids"),
        opts.log_every,
    );
    let beat = |ids: u64, buckets: usize| {
        beat.beat(
            ("ids_checked", ids),
            &[
                ("id_buckets_done", buckets as u64),
                ("id_buckets", id_buckets as u64),
            ],
        );
    };
    for_each_repeat(ids.finish()?, loaders, beat, |id, origin| {
        duplicates.insert(origin);
        rejected_acts += 1;
        let reject = Reject {
            file: act_files[origin.file as usize].clone(),
            row: origin.row,
            act_id: id.to_string(),
            column: "act_id".into(),
            reason: "duplicate_act_id".into(),
            value: id.to_string(),
        };
        Ok(rejects.add([reject], 0)?)
    })?;

    // Partitions far fuller than planned (a file's later rows of other patients than its
    // first ones and the beneficiaries') are cut, so that none is loaded whole.
    let share = acts.spilled_rows.div_ceil(parts as u64).max(1);
    let mut cuts = 0u64;
    let mut part_rows = Vec::with_capacity(parts);
    for part in 0..parts {
        let rows = PartRows {
            acts: acts.detach(part),
            bens: bens.detach(part),
            rights: rights.detach(part),
            counters: counters.detach(part),
        };
        match pieces_for(rows.acts.rows(), share) {
            Some(pieces) if rows.acts.on_disk() => {
                let copy = rows.acts.bytes()
                    + rows.bens.bytes()
                    + rows.rights.bytes()
                    + rows.counters.bytes();
                let free = free_bytes(&spill.path);
                if let Some(needed) = no_room_to_cut(copy, free) {
                    log(
                        "read",
                        "a partition holds more acts than planned, but the spill disk has no room to cut it: loaded whole",
                        &[
                            ("partition", part as u64),
                            ("acts", rows.acts.rows()),
                            ("acts_planned", share),
                            ("bytes_needed", needed),
                            ("free_bytes", free.unwrap_or(0)),
                        ],
                    );
                    part_rows.push(rows);
                    continue;
                }
                let dir = spill.sub(&format!("cut-{part:05}"));
                let cutting = Instant::now();
                let cut = cut_partition(rows, pieces, &dir, budget)?;
                if cut.len() == 1 {
                    log(
                        "read",
                        "a partition holds more acts than planned, all of one patient: not cut",
                        &[
                            ("partition", part as u64),
                            ("acts", cut[0].acts.rows()),
                            ("acts_planned", share),
                        ],
                    );
                    part_rows.extend(cut);
                    continue;
                }
                log(
                    "read",
                    "a partition holds more acts than planned: cut by its acts' patients",
                    &[
                        ("partition", part as u64),
                        ("acts", cut.iter().map(|r| r.acts.rows()).sum()),
                        ("acts_planned", share),
                        ("pieces", cut.len() as u64),
                        ("cut_ms", cutting.elapsed().as_millis() as u64),
                    ],
                );
                cuts += 1;
                part_rows.extend(cut);
            }
            _ => part_rows.push(rows),
        }
    }
    let parts = part_rows.len();
    log(
        "compute",
        "computing and writing",
        &[
            ("partitions", parts as u64),
            ("partitions_cut", cuts),
            ("spilled_acts", acts.spilled_rows),
            ("spilled_bytes", acts.spilled_bytes),
            ("loaders", loaders as u64),
        ],
    );
    let expected = read_rows - rejected_acts;
    let exact = partition::Expected {
        rows: expected,
        exact: true,
    };
    let mut room = OutputRoom::new(staging.path(), &opts.out, exact, Some(&spill.path));
    let mut sink = Sink::with_staging(book, opts, staging, expected, &files, rejects)?;
    // With more than one worker, loader threads load the next partitions while this one
    // computes the last (`loaders` of them: one for up to four workers).
    let loading = AtomicU64::new(0);
    let context = LoadContext {
        loading: &loading,
        duplicates: &duplicates,
        ben_files: &ben_files,
        act_files: &act_files,
        rights_known: inputs.rights.is_some(),
        counters_file: inputs.counters.as_deref(),
    };
    let jobs: Vec<_> = part_rows
        .into_iter()
        .map(|rows| {
            let context = &context;
            move || load_partition(rows, context)
        })
        .collect();
    let (computing, cpu, dispatch) = (Instant::now(), cpu::process_ns(), cpu::thread_ns());
    let largest = std::thread::scope(|scope| -> Result<u64, RunError> {
        let loaded = produce_ordered(scope, "rac-loader", loaders, jobs)?;
        compute_partitions(&mut sink, loaded, parts, opts, &mut room, log)
    })?;
    // The loaders' CPU time near the phase's time times their number: they held the
    // computing back (more workers would bring more loaders, see `partition::loaders_for`).
    log(
        "compute",
        "partitions computed",
        &[
            ("compute_ms", computing.elapsed().as_millis() as u64),
            ("cpu_ms", cpu::process_ns().saturating_sub(cpu) / 1_000_000),
            (
                "loading_cpu_ms",
                loading.load(Ordering::Relaxed) / 1_000_000,
            ),
            ("loaders", loaders as u64),
            (
                "dispatch_cpu_ms",
                cpu::thread_ns().saturating_sub(dispatch) / 1_000_000,
            ),
            ("totals_cpu_ms", sink.totals_cpu_ms()),
            ("largest_partition_acts", largest),
            ("reject_files", sink.reject_files()),
        ],
    );
    // Every spill file was deleted as its partition was read; the folder goes before commit.
    spill.remove()?;
    sink.finish(read_rows, started)
}

/// Whether the acts' spill files will fit on their disk: judged once, when a
/// [`partition::ROOM_SAMPLE`]th of the acts to spill is written, from the bytes they took and
/// the room left. A run that would fill the disk stops then, before its hours of work, rather
/// than when the disk is full (exit 2: the configuration, its `--temp-dir`, is to change).
/// Where the acts are counted from the size of a CSV file, the projection is only logged.
struct Room<'p> {
    /// A folder on the spill files' file system.
    disk: &'p Path,
    /// The folder named in the message: `--temp-dir`, or the folder of `--out`.
    shown: &'p Path,
    expected: partition::Expected,
    compression: SpillCompression,
    judged: bool,
}

impl Room<'_> {
    /// Judges the room once enough acts are written: `read` is the act rows read so far and
    /// those of them accepted (the rejected ones are not spilled: the acts still to spill are
    /// the expected ones in that proportion); `acts` and `ids` are the (rows, bytes) written by
    /// their stores.
    fn judge(
        &mut self,
        (read, accepted): (u64, u64),
        acts: (u64, u64),
        ids: (u64, u64),
        log: &Log<'_>,
    ) -> Result<(), RunError> {
        let expected = self.expected.rows;
        let to_spill = if read == 0 {
            expected
        } else {
            u64::try_from(u128::from(expected) * u128::from(accepted) / u128::from(read))
                .unwrap_or(u64::MAX)
        };
        if self.judged || acts.0 == 0 || acts.0 < to_spill / partition::ROOM_SAMPLE {
            return Ok(());
        }
        self.judged = true;
        let Some(free) = free_bytes(self.disk) else {
            log(
                "read",
                "the room left on the spill files' disk cannot be read: not judged",
                &[],
            );
            return Ok(());
        };
        let needed = partition::spill_still_needed(to_spill, &[acts, ids]);
        if needed <= free {
            return Ok(());
        }
        let smaller = match self.compression {
            SpillCompression::None => {
                ", or --spill-compression lz4 (about a third of the bytes) or zstd (a fifth)"
            }
            SpillCompression::Lz4 => ", or --spill-compression zstd (about half of LZ4's bytes)",
            SpillCompression::Zstd => "",
        };
        let message = format!(
            "the spill files need about {} MiB more in {} ({} bytes an act so far, {expected} acts expected), which has {} MiB free: give --temp-dir a larger disk{smaller}",
            mib(needed),
            self.shown.display(),
            (acts.1 + ids.1) / acts.0,
            mib(free),
        );
        too_small(
            self.expected,
            ("read", message),
            &[("needed_bytes", needed), ("free_bytes", free)],
            log,
        )
    }
}

/// The act-id buckets for `parts` partitions: an id row is an eighth of an act row, so as
/// many buckets as partitions would be small.
fn id_buckets(parts: usize) -> usize {
    parts.div_ceil(8)
}

/// The act ids' read buffer beside the acts' `budget`: a quarter of it.
fn id_budget(budget: usize) -> usize {
    budget / 4
}

/// The spill disk's room, for [`auto_compression`]: its free bytes (if they could be read),
/// and the folder named for it.
struct SpillRoom<'a> {
    free: Option<u64>,
    shown: &'a Path,
}

/// How the acts will be spilled, for [`auto_compression`]: into `parts` partitions (and their
/// [`id_buckets`]), from read buffers of `budget` bytes (the ids' a quarter of it), the acts
/// carrying `carried` bytes of values each.
struct SpillStores {
    parts: usize,
    budget: usize,
    carried: u64,
}

/// `--spill-compression auto`: the spill files as they are where their disk has room for
/// them, else compressed, as little as fits ([`partition::fitting`]); zstd when nothing
/// does, and the room check judges the run on the first acts written ([`Room`]). A disk with
/// [`partition::SPILL_BOUND_PER_ACT`] bytes an act (and the carried values) is not looked at
/// further; on a shorter one the acts' and their ids' spill is projected from the first acts
/// ([`spill_projection`]) and the choice logged. A disk whose room cannot be read, or acts
/// that cannot be (the reading reports them in its turn), keep the files as they are.
fn auto_compression(
    inputs: &Inputs,
    expected: partition::Expected,
    stores: SpillStores,
    room: SpillRoom<'_>,
    log: &Log<'_>,
) -> SpillCompression {
    let Some(free) = room.free else {
        return SpillCompression::None;
    };
    let rows = expected.rows;
    let bound = partition::SPILL_BOUND_PER_ACT + stores.carried;
    if rows.saturating_mul(bound) <= free {
        return SpillCompression::None;
    }
    let Some(bytes) = spill_projection(&inputs.acts, &inputs.read, rows, &stores) else {
        return SpillCompression::None;
    };
    let projected: Vec<(SpillCompression, u64)> =
        SpillCompression::ALL.into_iter().zip(bytes).collect();
    let (chosen, decision) = match partition::fitting(&projected, free) {
        Some(SpillCompression::None) => (SpillCompression::None, "kept as they are".to_string()),
        Some(chosen) => (chosen, format!("compressed with {}", chosen.name())),
        None => (
            SpillCompression::Zstd,
            "compressed with zstd, which may still not fit: the room check judges the run on the first acts written".to_string(),
        ),
    };
    let [none, lz4, zstd] = bytes.map(mib);
    let counted = if expected.exact {
        ""
    } else {
        ", estimated from the size of a CSV file"
    };
    log(
        "read",
        &format!(
            "spill files projected at about {none} MiB as they are ({lz4} MiB with lz4, {zstd} with zstd; {rows} acts expected{counted}), {} MiB free in {}: {decision} (--spill-compression auto)",
            mib(free),
            room.shown.display(),
        ),
        &[
            ("free_bytes", free),
            (
                "projected_bytes",
                projected.iter().find(|p| p.0 == chosen).map_or(0, |p| p.1),
            ),
        ],
    );
    chosen
}

/// Rows of each batch a store writes, about: the rows it holds when it spills (a budget's
/// worth of rows of `row_bytes`, or one read chunk if that is more), spread over its `parts`.
fn batch_rows(budget: usize, row_bytes: usize, parts: usize) -> usize {
    let held = (budget / row_bytes.max(1)).max(read::DEFAULT_CHUNK_ROWS);
    (held / parts.max(1)).max(1)
}

/// The bytes the spill files of `rows` acts and their ids would take, for each of
/// [`SpillCompression::ALL`]: the first acts of the input (up to
/// [`partition::SPILL_SAMPLE_ROWS`], across its files) encoded in batches of the rows each
/// partition's will hold ([`batch_rows`]: the smaller the batches, the more bytes an act),
/// scaled to `rows`. `None` if no act can be read.
fn spill_projection(
    acts: &Path,
    opts: &ReadOptions,
    rows: u64,
    stores: &SpillStores,
) -> Option<[u64; 3]> {
    let mut sample: Vec<ActRow> = Vec::new();
    let chunks = read::open_acts(acts, opts).ok()?;
    for chunk in chunks.with_chunk_rows(partition::SPILL_SAMPLE_ROWS) {
        sample.extend(chunk.ok()?.rows);
        if sample.len() >= partition::SPILL_SAMPLE_ROWS {
            break;
        }
    }
    if sample.is_empty() {
        return None;
    }
    let ids: Vec<IdRow> = sample
        .iter()
        .map(|r| {
            let origin = Origin {
                file: r.file as u32,
                row: r.row,
            };
            (r.value.act_id.clone(), origin)
        })
        .collect();
    let act_refs: Vec<&ActRow> = sample.iter().collect();
    let id_refs: Vec<&IdRow> = ids.iter().collect();
    let act_mem = sample.iter().map(|r| r.mem_bytes()).sum::<usize>() / sample.len();
    let id_mem = ids.iter().map(|r| r.mem_bytes()).sum::<usize>() / ids.len();
    let acts_batch = batch_rows(stores.budget, act_mem, stores.parts);
    let ids_batch = batch_rows(id_budget(stores.budget), id_mem, id_buckets(stores.parts));
    let scaled = |bytes: u64, sampled: usize| {
        let total = u128::from(bytes) * u128::from(rows) / sampled as u128;
        u64::try_from(total).unwrap_or(u64::MAX)
    };
    let mut projected = [0u64; 3];
    for (slot, compression) in projected.iter_mut().zip(SpillCompression::ALL) {
        // At most 64 batches of each: what a run's batches take, not a whole run's worth.
        let acts = &act_refs[..act_refs.len().min(64 * acts_batch)];
        let ids = &id_refs[..id_refs.len().min(64 * ids_batch)];
        let act_bytes = spill::spill_bytes(acts, acts_batch, compression).ok()?;
        let id_bytes = spill::spill_bytes(ids, ids_batch, compression).ok()?;
        *slot = scaled(act_bytes, acts.len()).saturating_add(scaled(id_bytes, ids.len()));
    }
    Some(projected)
}

/// A disk judged too small for the rest of the run: the run stops (exit 2) where the acts
/// were counted exactly; where they were estimated from the size of a CSV file, `message` is
/// logged at `step` and the run goes on.
fn too_small(
    expected: partition::Expected,
    (step, message): (&str, String),
    fields: &[(&str, u64)],
    log: &Log<'_>,
) -> Result<(), RunError> {
    if expected.exact {
        return Err(RunError::Usage(message));
    }
    log(
        step,
        &format!("{message} (the acts are counted from the size of a CSV file: going on)"),
        fields,
    );
    Ok(())
}

/// Bytes in MiB, rounded up.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// Whether the outputs will fit on the disk of `--out`: judged once, when the acts in their
/// file are a [`partition::ROOM_SAMPLE`]th of them and at least [`OUTPUT_ROOM_MIN_ACTS`], from
/// the bytes the outputs took so far and the room left. The
/// spill files still to be read count as room when they are on the same disk: each is
/// deleted as its partition is loaded. A run that would fill the disk stops then (exit 2),
/// rather than when the disk is full, hours later (exit 1); where the acts are counted from
/// the size of a CSV file, the projection is only logged.
struct OutputRoom {
    /// The staging folder: its files are the outputs written so far.
    staging: PathBuf,
    /// `--out`, named in the message.
    shown: PathBuf,
    expected: partition::Expected,
    /// The spill folder, if the acts were spilled.
    spill: Option<PathBuf>,
    judged: bool,
}

/// Acts in `acts.*` before the room for the outputs is judged, at least: a sample of a few row
/// groups of `acts.parquet`, since the bytes of the other tables (written per partition) are
/// projected by those acts.
const OUTPUT_ROOM_MIN_ACTS: u64 = 1 << 20;

impl OutputRoom {
    fn new(
        staging: &Path,
        out: &Path,
        expected: partition::Expected,
        spill: Option<&Path>,
    ) -> OutputRoom {
        OutputRoom {
            staging: staging.to_path_buf(),
            shown: out.to_path_buf(),
            expected,
            spill: spill.map(Path::to_path_buf),
            judged: false,
        }
    }

    /// Judges the room once enough acts are in their file: `in_file` of the expected ones,
    /// whose outputs are on disk (not yet those of the acts in the writer's queue or in the
    /// Parquet row group it fills). `rejects` is about the bytes of `rejects.csv` for the
    /// rows rejected so far: written at the end, before the run files it is merged from are
    /// removed (rejects to come are not projected: they need not follow the acts).
    fn judge(&mut self, in_file: u64, rejects: u64, log: &Log<'_>) -> Result<(), RunError> {
        let expected = self.expected.rows;
        if self.judged
            || in_file < OUTPUT_ROOM_MIN_ACTS
            || in_file < expected / partition::ROOM_SAMPLE
            || in_file >= expected
        {
            return Ok(());
        }
        self.judged = true;
        let Some(free) = free_bytes(&self.staging) else {
            log(
                "compute",
                "the room left on the outputs' disk cannot be read: not judged",
                &[],
            );
            return Ok(());
        };
        let written = files_bytes(&self.staging, false);
        let freed = match &self.spill {
            Some(spill) if same_disk(spill, &self.staging) => files_bytes(spill, true),
            _ => 0,
        };
        let to_write = bytes_to_write(expected, in_file, written).saturating_add(rejects);
        let Some(short) = short_by(to_write, free, freed) else {
            log(
                "compute",
                "the outputs fit on their disk",
                &[
                    ("bytes_to_write", to_write),
                    ("rejects_bytes", rejects),
                    ("free_bytes", free),
                    ("spill_bytes_to_free", freed),
                ],
            );
            return Ok(());
        };
        let rejected = if rejects > 0 {
            format!(", {} MiB of rejects", mib(rejects))
        } else {
            String::new()
        };
        let message = format!(
            "the outputs need about {} MiB more in {} than it will have ({} bytes an act so far, {expected} acts to write{rejected}, {} MiB free): give --out a larger disk",
            mib(short),
            self.shown.display(),
            written / in_file,
            mib(free),
        );
        too_small(
            self.expected,
            ("compute", message),
            &[("short_bytes", short), ("free_bytes", free)],
            log,
        )
    }
}

/// The bytes the outputs would lack: `to_write` bytes still to write, where the room is the
/// `free` bytes plus the `freed` ones that the run gives back before it ends. `None` if they
/// fit.
fn short_by(to_write: u64, free: u64, freed: u64) -> Option<u64> {
    let room = free.saturating_add(freed);
    (to_write > room).then(|| to_write - room)
}

/// The bytes still to write for `expected` acts when the first `done` of them took
/// `written` (0 when none is done).
fn bytes_to_write(expected: u64, done: u64, written: u64) -> u64 {
    if done == 0 {
        return 0;
    }
    let bytes = u128::from(written) * u128::from(expected.saturating_sub(done)) / u128::from(done);
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// The bytes of the files in `dir`, and with `nested` of those in its folders too (the spill
/// folder's cut partitions, in `cut-NNNNN`; not the staging folder's spill folder); 0 for
/// what cannot be read.
fn files_bytes(dir: &Path, nested: bool) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_file() => meta.len(),
            Ok(meta) if nested && meta.is_dir() => files_bytes(&entry.path(), true),
            _ => 0,
        })
        .sum()
}

/// Whether two folders are on one file system (never, where that cannot be told).
fn same_disk(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// Computes and writes the `parts` partitions as they are loaded, in order, logging how far
/// it is ([`Heartbeat`]). Returns the most act rows a partition held (computed or rejected).
fn compute_partitions(
    sink: &mut Sink,
    loaded: impl Iterator<Item = Result<Prepared, RunError>>,
    parts: usize,
    opts: &RunOptions,
    room: &mut OutputRoom,
    log: &Log<'_>,
) -> Result<u64, RunError> {
    let mut beat = Heartbeat::new(log, ("compute", "computing"), opts.log_every);
    let (mut parts_done, mut computed, mut largest) = (0u64, 0u64, 0u64);
    for prepared in loaded {
        let prepared = prepared?;
        sink.partition(&prepared)?;
        parts_done += 1;
        computed += prepared.acts.len() as u64;
        let rejected = prepared.rejects.len() as u64 - prepared.other_rejects;
        largest = largest.max(prepared.acts.len() as u64 + rejected);
        room.judge(sink.acts_in_file(), sink.rejects_csv_bytes(), log)?;
        beat.beat(
            ("acts_computed", computed),
            &[
                ("partitions_done", parts_done),
                ("partitions", parts as u64),
            ],
        );
        // Freed here, on the computing thread (while the next partition loads).
        drop(prepared);
    }
    Ok(largest)
}

/// The partition of each row, by its patient id: worked out on the pool, or on this thread.
fn parts_of<T: Sync>(
    on_pool: bool,
    plan: &Plan,
    rows: &[T],
    patient_id: impl Fn(&T) -> &str + Sync + Send,
) -> Vec<u32> {
    route(on_pool, rows, |r| plan.part_of(patient_id(r)) as u32)
}

/// `f` of each row, in order: on the pool, or on this thread.
fn route<T: Sync, R: Send>(on_pool: bool, rows: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    if on_pool {
        rows.par_iter().map(f).collect()
    } else {
        rows.iter().map(f).collect()
    }
}

/// [`route`] for pairs, unzipped.
fn route_pairs<T: Sync, A: Send, B: Send>(
    on_pool: bool,
    rows: &[T],
    f: impl Fn(&T) -> (A, B) + Sync + Send,
) -> (Vec<A>, Vec<B>) {
    if on_pool {
        rows.par_iter().map(f).unzip()
    } else {
        rows.iter().map(f).unzip()
    }
}

/// The bucket of an act id, among `buckets`: the same id always lands in the same bucket.
fn id_bucket(id: &str, buckets: usize) -> usize {
    (partition::stable_hash(id.as_bytes()) % buckets as u64) as usize
}

/// Calls `f` for every id row whose id was seen before in its bucket (so, in the whole
/// table): the second and later occurrences, in the order they were pushed. With more than
/// one worker, `loaders` threads read the next buckets back while this one searches the
/// last: the run has no other work between reading and computing. (Searching on the loaders
/// instead put the reading back and the search on one thread, one after the other: 100 M
/// acts, 4.5 → 8.4 s with one loader.)
fn for_each_repeat(
    mut ids: Stored<IdRow>,
    loaders: usize,
    mut progress: impl FnMut(u64, usize),
    mut f: impl FnMut(&Id, Origin) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let (mut checked, mut buckets) = (0u64, 0usize);
    let jobs: Vec<_> = (0..ids.parts())
        .map(|bucket| {
            let rows = ids.detach(bucket);
            move || rows.load()
        })
        .collect();
    std::thread::scope(|scope| -> Result<(), RunError> {
        for rows in produce_ordered(scope, "rac-ids", loaders, jobs)? {
            let rows = rows?;
            let mut seen: HashSet<&str> =
                HashSet::with_capacity_and_hasher(rows.len(), Default::default());
            for (id, origin) in &rows {
                if !seen.insert(id.as_str()) {
                    f(id, *origin)?;
                }
            }
            checked += rows.len() as u64;
            buckets += 1;
            progress(checked, buckets);
        }
        Ok(())
    })
}

/// The items of a stage, produced beside the consumer or in line with it ([`produce`]).
type Produced<'scope, T, E> = Box<dyn Iterator<Item = Result<T, E>> + Send + 'scope>;

/// Runs `items` on a named thread of `scope` that sends them into a queue of `capacity`
/// (0: hand to hand), and returns the items as they arrive. The thread stops after the first error,
/// or when the receiver is dropped. With a pool of one thread (`--threads 1`) the items are
/// produced in line, on the consumer's thread, so that the run uses one core.
fn produce<'scope, T: Send + 'scope, E: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    capacity: usize,
    items: impl Iterator<Item = Result<T, E>> + Send + 'scope,
) -> Result<Produced<'scope, T, E>, RunError> {
    if super::single_threaded() {
        return Ok(Box::new(items));
    }
    let (queue, received) = sync_channel(capacity);
    std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(scope, move || {
            for item in items {
                let failed = item.is_err();
                if queue.send(item).is_err() || failed {
                    break;
                }
            }
        })
        .map_err(|e| RunError::Internal(format!("cannot start the {name} thread: {e}")))?;
    Ok(Box::new(received.into_iter()))
}

/// [`produce`] on `producers` threads of `scope`, for items that can be made independently
/// of each other (`jobs`, in their order): thread `k` makes items `k`, `k + producers`, …, and
/// hands each to the consumer (one queue per thread, hand to hand), which receives them in
/// the jobs' order. So at most `producers` items wait made while the consumer works on one.
/// A thread stops after its first error, or when the receiver is dropped; the items stop
/// at the first one missing. With one producer (or one job, or a pool of one thread) this is
/// [`produce`].
fn produce_ordered<'scope, T, E, J>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    producers: usize,
    jobs: Vec<J>,
) -> Result<Produced<'scope, T, E>, RunError>
where
    T: Send + 'scope,
    E: Send + 'scope,
    J: FnOnce() -> Result<T, E> + Send + 'scope,
{
    // No thread without a job.
    let producers = producers.min(jobs.len());
    if producers <= 1 || super::single_threaded() {
        return produce(scope, name, 0, jobs.into_iter().map(|job| job()));
    }
    let total = jobs.len();
    let mut lanes: Vec<Vec<J>> = (0..producers).map(|_| Vec::new()).collect();
    for (i, job) in jobs.into_iter().enumerate() {
        lanes[i % producers].push(job);
    }
    let mut queues = Vec::with_capacity(producers);
    for (k, lane) in lanes.into_iter().enumerate() {
        let (queue, received) = sync_channel(0);
        let thread = format!("{name}-{k}");
        std::thread::Builder::new()
            .name(thread.clone())
            .spawn_scoped(scope, move || {
                for job in lane {
                    let item = job();
                    let failed = item.is_err();
                    if queue.send(item).is_err() || failed {
                        break;
                    }
                }
            })
            .map_err(|e| RunError::Internal(format!("cannot start the {thread} thread: {e}")))?;
        queues.push(received);
    }
    Ok(Box::new(
        (0..total).map_while(move |i| queues[i % producers].recv().ok()),
    ))
}

/// A bar on stderr over `total` rows with their rate, or a hidden one.
pub(crate) fn progress_bar(visible: bool, total: u64, step: &str) -> Bar {
    if !visible {
        return Bar(indicatif::ProgressBar::hidden());
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(bar_style(step).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    Bar(bar)
}

/// The look of a step's bar: `read  ███░░ 1,065,536/2,000,000 acts, 1,454,186 acts/s, eta 1s`.
fn bar_style(step: &str) -> Result<indicatif::ProgressStyle, indicatif::style::TemplateError> {
    let template = format!(
        "{step:<13} {{bar:40}} {{human_pos}}/{{human_len}} acts, {{rate}} acts/s, eta {{eta}}"
    );
    Ok(
        indicatif::ProgressStyle::with_template(&template)?.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&whole_rate(state.per_sec()));
            },
        ),
    )
}

/// A rate of rows per second as a whole number with thousands separators (`1,454,186`):
/// indicatif's own `{per_sec}` shows four decimals of a rate of millions.
fn whole_rate(per_second: f64) -> String {
    let whole = if per_second.is_finite() && per_second > 0.0 {
        per_second.round() as u64
    } else {
        0
    };
    indicatif::HumanCount(whole).to_string()
}

/// A progress bar, finished and cleared from the terminal when dropped, however its step
/// ends (an error included).
pub(crate) struct Bar(indicatif::ProgressBar);

impl std::ops::Deref for Bar {
    type Target = indicatif::ProgressBar;

    fn deref(&self) -> &indicatif::ProgressBar {
        &self.0
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// The partitioned beneficiaries, rights and counters.
struct SmallTables<'s> {
    bens: &'s mut Stored<Sourced<Beneficiary>>,
    rights: &'s mut Stored<RightPeriod>,
    counters: &'s mut Stored<YearCounter>,
    /// The counters' file, if given (its errors name it).
    counters_file: Option<&'s Path>,
}

/// One partition's rows of the four tables, still to load ([`load_partition`]).
struct PartRows {
    acts: Spilled<ActRow>,
    bens: Spilled<Sourced<Beneficiary>>,
    rights: Spilled<RightPeriod>,
    counters: Spilled<YearCounter>,
}

/// A partition is cut when it holds more than this many times its share of the acts.
const CUT_SHARES: u64 = 2;

/// Below this many acts a partition is not cut, however full: it takes little memory.
const CUT_MIN_ACTS: u64 = 1024;

/// Most pieces a partition is cut into (a spill file each, open at once).
const CUT_MAX_PIECES: u64 = 256;

/// The pieces a partition of `acts` is cut into, `share` the acts planned for one: `None`
/// when it is within [`CUT_SHARES`] shares, or small.
fn pieces_for(acts: u64, share: u64) -> Option<usize> {
    (acts > CUT_SHARES * share && acts >= CUT_MIN_ACTS)
        .then(|| acts.div_ceil(share.max(1)).min(CUT_MAX_PIECES) as usize)
}

/// The bytes a cut needs on the spill disk if it has fewer `free` (`None`: enough, or not
/// known): the pieces are written before the partition's files, of `copy` bytes, are deleted,
/// so a second copy stands beside the first for a moment, and an eighth more for the pieces'
/// smaller batches (each with its own header).
fn no_room_to_cut(copy: u64, free: Option<u64>) -> Option<u64> {
    let needed = copy.saturating_add(copy / 8);
    free.is_some_and(|free| free < needed).then_some(needed)
}

/// A partition's rows, routed again into at most `pieces` partitions by ranges of its acts'
/// patients (sampled from its acts, read a batch at a time), spilled into `dir`: in id order,
/// as the partition's own rows would have been computed. A partition of a single patient
/// stays whole.
fn cut_partition(
    rows: PartRows,
    pieces: usize,
    dir: &SpillDir,
    budget: usize,
) -> Result<Vec<PartRows>, RunError> {
    // No more pieces than the run's partitions (a share each), whose spill files the
    // open-file limit already allowed, and the run's stores are closed by now.
    let mut sampler = Sampler::new(pieces * SAMPLE_PER_PART);
    rows.acts.scan_text(
        "patient_id",
        |act| &act.value.patient_id,
        |id| sampler.add(id),
    )?;
    // Every patient sampled (a partition of few patients): cut by their acts, counted, so
    // that heavy patients side by side do not share a piece. Else by the sampled patients:
    // each stands for those around it, and weighting them by their own acts was noisier (a
    // partition of 5.0 M acts of 0.5 M patients in 83 pieces: 101 218 acts in the largest,
    // 85 569 by patients).
    let plan = if sampler.is_full() {
        Plan::from_sample(sampler, pieces)
    } else if sampler.ids().nth(1).is_none() {
        // One patient: no second read to count their acts.
        return Ok(vec![rows]);
    } else {
        let mut weights: HashMap<Id, u64> = sampler.ids().map(|id| (id.clone(), 0)).collect();
        rows.acts.scan_text(
            "patient_id",
            |act| &act.value.patient_id,
            |id| {
                if let Some(n) = weights.get_mut(id) {
                    *n += 1;
                }
            },
        )?;
        Plan::from_weighted_sample(sampler, pieces, |id| weights[id])
    };
    if plan.parts() <= 1 {
        return Ok(vec![rows]);
    }
    let mut acts = route_again(rows.acts, &plan, dir, budget, |r| &r.value.patient_id)?;
    let mut bens = route_again(rows.bens, &plan, dir, budget, |r| &r.value.patient_id)?;
    let mut rights = route_again(rows.rights, &plan, dir, budget, |r| &r.patient_id)?;
    let mut counters = route_again(rows.counters, &plan, dir, budget, |r| &r.patient_id)?;
    Ok((0..plan.parts())
        .map(|part| PartRows {
            acts: acts.detach(part),
            bens: bens.detach(part),
            rights: rights.detach(part),
            counters: counters.detach(part),
        })
        .collect())
}

/// One table's rows of a partition, routed by `plan` into spill files in `dir`, a batch at a
/// time.
fn route_again<T: Spillable>(
    rows: Spilled<T>,
    plan: &Plan,
    dir: &SpillDir,
    budget: usize,
    patient_id: impl Fn(&T) -> &str + Sync + Send,
) -> Result<Stored<T>, RunError> {
    let mut store = dir.store::<T>(plan.parts(), budget);
    rows.drain(|chunk: Vec<T>| -> Result<(), RunError> {
        let parts = parts_of(false, plan, &chunk, &patient_id);
        Ok(store.push_chunk(chunk, parts)?)
    })?;
    Ok(store.finish_on_disk()?)
}

/// Rows of the acts files, a bit each: the rows rejected as duplicates, until the partitions
/// are computed. A hash set took 16 bytes and more a duplicate (the same 10 M-act file read
/// twice: 962 MiB peak RSS, one copy alone 428 MiB); a bit a row of each file, up to its last
/// duplicate (1.2–2.4 MiB for 10 M rows, the vector grown by doubling), is bounded whatever
/// the count of duplicates.
#[derive(Debug, Default)]
struct RowSet {
    /// Per file, bit `row % 64` of word `row / 64`.
    files: Vec<Vec<u64>>,
    rows: u64,
}

impl RowSet {
    fn insert(&mut self, origin: Origin) {
        let file = origin.file as usize;
        if self.files.len() <= file {
            self.files.resize_with(file + 1, Vec::new);
        }
        let words = &mut self.files[file];
        let (word, bit) = ((origin.row / 64) as usize, origin.row % 64);
        if words.len() <= word {
            words.resize(word + 1, 0);
        }
        self.rows += u64::from(words[word] & (1 << bit) == 0);
        words[word] |= 1 << bit;
    }

    fn contains(&self, origin: Origin) -> bool {
        let (word, bit) = ((origin.row / 64) as usize, origin.row % 64);
        self.files
            .get(origin.file as usize)
            .and_then(|words| words.get(word))
            .is_some_and(|w| w & (1 << bit) != 0)
    }

    fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

/// What every partition's loading shares.
struct LoadContext<'s> {
    /// CPU nanoseconds spent loading, summed over the loaders.
    loading: &'s AtomicU64,
    /// Act rows whose id an earlier row has (rejected in every partition).
    duplicates: &'s RowSet,
    ben_files: &'s [String],
    act_files: &'s [String],
    rights_known: bool,
    /// The counters' file, if given (its errors name it).
    counters_file: Option<&'s Path>,
}

/// One partition's rows, checked and grouped by patient like an in-memory run's.
fn load_partition(rows: PartRows, context: &LoadContext) -> Result<Prepared, RunError> {
    let started = cpu::thread_ns();
    let prepared = load_partition_inner(rows, context);
    let spent = cpu::thread_ns().saturating_sub(started);
    context.loading.fetch_add(spent, Ordering::Relaxed);
    prepared
}

/// [`load_partition`], untimed.
fn load_partition_inner(rows: PartRows, context: &LoadContext) -> Result<Prepared, RunError> {
    let mut acts = rows.acts.load()?;
    if !context.duplicates.is_empty() {
        acts.retain(|r| {
            !context.duplicates.contains(Origin {
                file: r.file as u32,
                row: r.row,
            })
        });
    }
    let small = SmallRows {
        bens: rows.bens.load()?,
        rights: rows.rights.load()?,
        counters: rows.counters.load()?,
    };
    prepare_partition(
        small,
        context.counters_file,
        acts,
        Vec::new(),
        context.ben_files,
        context.act_files,
        context.rights_known,
    )
}

/// A partition's rows of the small tables, loaded.
struct SmallRows {
    bens: Vec<Sourced<Beneficiary>>,
    rights: Vec<RightPeriod>,
    counters: Vec<YearCounter>,
}

/// A partition's acts (without duplicate ids) with its beneficiaries, rights and counters
/// (read from `counters_file`); `act_rejects` are rows of the acts file already refused.
fn prepare_partition(
    small: SmallRows,
    counters_file: Option<&Path>,
    rows: Vec<ActRow>,
    act_rejects: Vec<Reject>,
    ben_files: &[String],
    act_files: &[String],
    rights_known: bool,
) -> Result<Prepared, RunError> {
    let mut rejects = Vec::new();
    let beneficiaries = index_beneficiaries(small.bens, ben_files, &mut rejects);
    let other_rejects = rejects.len() as u64;
    rejects.extend(act_rejects);
    let rights = group_rights(small.rights);
    let opening: HashMap<String, Vec<YearCounter>> = match counters_file {
        Some(path) => group_counters(path, small.counters)?,
        None => HashMap::default(),
    };
    let base = Prepared {
        beneficiaries,
        rights,
        rights_known,
        opening,
        act_files: act_files.to_vec(),
        rejects,
        other_rejects,
        read: 0,
        files: Vec::new(),
        ..Prepared::default()
    };
    // Duplicate ids were rejected across partitions before.
    assemble(base, rows, None, IdsChecked::Already)
}

/// What the sorted path receives from the routing of the small tables.
struct Routed<'s> {
    plan: &'s Plan,
    loaders: SmallTables<'s>,
    ben_files: &'s [String],
    counter_years: &'s [i32],
    /// The rejects so far: rows of the beneficiaries and rights files.
    rejects: RejectStore,
    files: Vec<(&'static str, String)>,
    /// Act rows expected (progress bar, room for the outputs).
    expected: partition::Expected,
}

/// Whether the acts are known to be sorted by `patient_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// `--sorted`: the first pass checks it, and a row out of order fails the run there.
    Declared,
    /// Unknown: the first pass checks it, and stops at the first row out of order (reading on
    /// only for the patients of the first acts of each file, [`ACT_HEAD_ROWS`] in all).
    Detect,
}

/// The first pass over sorted acts: reads only `act_id` and `patient_id`, and returns the
/// stable hashes of the act ids that occur more than once (a superset of the repeated ids:
/// two ids of the same hash are both in it, which only makes the stream remember them).
/// It checks the order of every row whose two ids are valid: at the first row whose
/// `patient_id` is lower than the previous one's, it returns `None` when the order was to be
/// detected (on acts in no particular order that is within the first chunk; the partitioned
/// path then reads and judges every row) and fails when it was declared. The rows it reads
/// are not judged here: the stream rejects those that are not valid acts.
/// `act_patients` samples the patients of the acts in order (all of them when it returns
/// their hashes); `head` gets the patients of the first acts of each file of [`head_files`],
/// [`ACT_HEAD_ROWS`] in all, when it returns `None` (the first file's read on past a row out
/// of order, the others' read apart; a file that fails to read gives what it read before:
/// the reading reports it in its turn).
fn first_pass(
    inputs: &Inputs,
    spill: &SpillDir,
    (parts, budget): (usize, usize),
    order: Order,
    (act_patients, head): (&mut Sampler, &mut Vec<Id>),
    mut beat: Heartbeat,
    bar: Bar,
) -> Result<Option<HashSet<IdHash>>, RunError> {
    // A hash is 8 bytes where an act takes about 1 100 in memory: a bucket of hashes for 64
    // partitions is still smaller than one partition's acts.
    let buckets = parts.div_ceil(64);
    (beat.log)(
        "read",
        match order {
            Order::Declared => "finding repeated act ids",
            Order::Detect => "checking whether the acts are sorted by patient_id",
        },
        &[("hash_buckets", buckets as u64)],
    );
    // `bar` is owned here: cleared however the pass ends (an error included), not left drawn
    // above the message. Its own folder: a pass given up leaves no file behind.
    let dir = spill.sub("first-pass");
    let mut hashes = dir.store::<IdHash>(buckets, budget);
    let mut chunks = Chunks::<ActKey>::open(&inputs.acts, &inputs.read)?;
    let files = chunks.files().to_vec();
    let judged = head_files(files.len());
    let per_file = ACT_HEAD_ROWS / judged.len();
    let mut last: Option<(Id, usize, u64)> = None;
    let mut read_rows = 0;
    while let Some(chunk) = chunks.next() {
        let chunk = chunk?;
        bar.inc(chunk.read);
        read_rows += chunk.read;
        let mut rows = chunk.rows.into_iter();
        while let Some(r) = rows.next() {
            let ActKey { act_id, patient_id } = r.value;
            if let Some(last) = &last
                && patient_id < last.0
            {
                if order == Order::Declared {
                    let here = (&patient_id, r.file, r.row);
                    return Err(not_sorted(&files, here, last, order));
                }
                drop(hashes);
                dir.remove()?;
                let ids = std::iter::once((r.file, patient_id))
                    .chain(rows.map(|r| (r.file, r.value.patient_id)));
                let later = chunks.map_while(Result::ok).flat_map(|chunk| chunk.rows);
                let later = later.map(|r| (r.file, r.value.patient_id));
                let first = ids.chain(later).take_while(|(file, _)| *file == 0);
                let room = per_file.saturating_sub(head.len());
                head.extend(first.map(|(_, id)| id).take(room));
                for &file in &judged[1..] {
                    let chunks = Chunks::<PatientKey>::open(&inputs.acts, &inputs.read)?;
                    let mut chunks = chunks.starting_at(file).with_chunk_rows(per_file);
                    // A chunk never spans two files: an empty file gives the next one's.
                    if let Some(Ok(chunk)) = chunks.next() {
                        let rows = chunk.rows.into_iter().filter(|r| r.file == file);
                        head.extend(rows.map(|r| r.value.patient_id));
                    }
                }
                return Ok(None);
            }
            if last.as_ref().is_none_or(|last| last.0 != patient_id) {
                act_patients.add(&patient_id);
            }
            if r.file == 0 && head.len() < per_file {
                head.push(patient_id.clone());
            }
            last = Some((patient_id, r.file, r.row));
            let hash = partition::stable_hash(act_id.as_bytes());
            hashes.push((hash % buckets as u64) as usize, hash)?;
        }
        // After the chunk's rows: a pass over acts in no order ends within its first chunk.
        beat.beat(("acts_read", read_rows), &[]);
    }
    let mut hashes = hashes.finish()?;
    let mut repeated: HashSet<IdHash> = HashSet::default();
    for bucket in 0..hashes.parts() {
        let mut bucket = hashes.take(bucket)?;
        rayon::slice::ParallelSliceMut::par_sort_unstable(&mut bucket[..]);
        repeated.extend(bucket.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]));
    }
    Ok(Some(repeated))
}

/// A sample of `k` of the acts' patients ([`Sampler`]), from a pass over their `patient_id`
/// column alone.
fn sample_act_patients(inputs: &Inputs, k: usize) -> Result<Sampler, RunError> {
    let mut sampler = Sampler::new(k);
    for chunk in Chunks::<PatientKey>::open(&inputs.acts, &inputs.read)? {
        for r in &chunk?.rows {
            sampler.add(&r.value.patient_id);
        }
    }
    Ok(sampler)
}

/// The counters of `path`, chunk by chunk, checked: the manifest beside them first, then each
/// chunk (a row that does not convert, negative counters fail the run: they are state).
pub(super) fn checked_counters(
    path: &Path,
) -> Result<impl Iterator<Item = Result<Vec<YearCounter>, RunError>> + '_, RunError> {
    let written = check_manifest(path)?;
    let chunks = Chunks::<YearCounter>::open(path, &ReadOptions::default())?;
    // The rows read, checked against the manifest's count once the chunks are done.
    let rows_read = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counted = rows_read.clone();
    let chunks = chunks.map(move |chunk| {
        let chunk = chunk?;
        if let Some(reject) = chunk.rejects.into_iter().next() {
            return Err(read::bad_counter(reject).into());
        }
        let values: Vec<YearCounter> = chunk.rows.into_iter().map(|s| s.value).collect();
        check_counters(path, &values)?;
        counted.set(counted.get() + values.len() as u64);
        Ok(values)
    });
    let end =
        std::iter::once_with(move || check_counter_rows(path, rows_read.get(), written.as_ref()))
            .filter_map(|checked| checked.err().map(Err));
    Ok(chunks.chain(end))
}

/// The first error in the beneficiaries, rights and counters, read whole in the order a run
/// reads them (their rows are not kept); `None` if they read without one.
pub(super) fn small_tables_error(inputs: &Inputs) -> Option<RunError> {
    fn read_all<T: read::Record>(path: &Path, opts: &ReadOptions) -> Result<(), RunError> {
        for chunk in Chunks::<T>::open(path, opts)? {
            chunk?;
        }
        Ok(())
    }
    let counters = |path: &Path| -> Result<(), RunError> {
        for values in checked_counters(path)? {
            values?;
        }
        Ok(())
    };
    let result = read_all::<Beneficiary>(&inputs.beneficiaries, &inputs.read)
        .and_then(|()| match &inputs.rights {
            Some(path) => read_all::<RightPeriod>(path, &inputs.read),
            None => Ok(()),
        })
        .and_then(|()| inputs.counters.as_deref().map_or(Ok(()), counters));
    result.err()
}

/// A row found out of `patient_id` order: `here` (its id, file index and row) comes after
/// `last`.
fn not_sorted(
    files: &[String],
    (id, file, row): (&Id, usize, u64),
    (last, last_file, last_row): &(Id, usize, u64),
    order: Order,
) -> RunError {
    let claim = match order {
        Order::Declared => "--sorted says the acts are in patient_id order",
        // The stream sees a subset of the rows the first pass found in order.
        Order::Detect => {
            "the first pass found them in patient_id order (did a file change between the passes?)"
        }
    };
    RunError::NotSorted(format!(
        "{}: row {row}: patient_id {:?} comes after {:?} (row {last_row} of {}), but {claim}",
        files[file],
        id.as_str(),
        last.as_str(),
        files[*last_file],
    ))
}

/// Acts in `patient_id` order (declared with `--sorted`, or found so by [`first_pass`]):
/// each partition's acts are one stretch of the input. The acts are streamed, partition
/// after partition, straight into the computation: no act is spilled. Duplicates are
/// rejected as in the other paths (the first valid row in file and row order is kept: the
/// stream is in that order).
#[allow(clippy::too_many_arguments)]
fn stream_sorted(
    book: &RuleBook,
    inputs: &Inputs,
    opts: &RunOptions,
    staging: crate::io::write::Staging,
    spill: &SpillDir,
    routed: Routed,
    repeated: HashSet<IdHash>,
    order: Order,
    started: Instant,
    log: &Log<'_>,
) -> Result<RunSummary, RunError> {
    let Routed {
        plan,
        loaders,
        ben_files,
        counter_years,
        rejects,
        mut files,
        expected,
    } = routed;
    let parts = plan.parts();

    // Pass 2: the acts, streamed.
    log(
        "compute",
        "streaming sorted acts",
        &[
            ("partitions", parts as u64),
            ("repeated_ids", repeated.len() as u64),
            ("order_detected", u64::from(order == Order::Detect)),
        ],
    );
    let chunks = read::open_acts(&inputs.acts, &inputs.read)?.with_chunk_rows(STREAM_CHUNK_ROWS);
    let act_files = chunks.files().to_vec();
    files.extend(act_files.iter().map(|f| ("acts", f.clone())));
    let mut room = OutputRoom::new(staging.path(), &opts.out, expected, None);
    let mut sink = Sink::with_staging(book, opts, staging, expected.rows, &files, rejects)?;
    let mut stats = StreamStats::default();
    let streamed = std::thread::scope(|scope| -> Result<u64, RunError> {
        let received = produce(scope, "rac-reader", 1, chunks)?;
        let stream = SortedStream {
            chunks: received,
            rows: Vec::new().into_iter(),
            peeked: None,
            next_part: 0,
            plan,
            repeated: &repeated,
            seen: HashSet::default(),
            last: None,
            rejects: Vec::new(),
            stats: &mut stats,
            small: loaders,
            ben_files,
            act_files: &act_files,
            rights_known: inputs.rights.is_some(),
            order,
            failed: false,
            last_rows: 0,
        };
        let loaded = produce(scope, "rac-loader", 0, stream)?;
        compute_partitions(&mut sink, loaded, parts, opts, &mut room, log)
    });
    let checked = streamed.and_then(|largest| match &inputs.counters {
        Some(path) => check_counter_years(path, stats.last_year, counter_years.iter().copied())
            .map(|()| largest),
        None => Ok(largest),
    });
    // On an error the sink is dropped: its writer is waited for, then the staging folder is
    // removed (the previous outputs stay as they were).
    let largest = checked?;
    log(
        "compute",
        "partitions computed",
        &[
            ("largest_partition_acts", largest),
            ("reject_files", sink.reject_files()),
        ],
    );
    spill.remove()?;
    sink.finish(stats.read, started)
}

/// What the stream counted, read once it has ended.
#[derive(Debug, Default)]
struct StreamStats {
    /// Act rows read.
    read: u64,
    /// Latest year of a valid act row (for the counters' check).
    last_year: Option<i32>,
}

/// Sorted acts cut into partitions: yields every partition in order, each with its stretch
/// of the acts (none for a partition without acts: its patients' counters carry over).
struct SortedStream<'s> {
    chunks: Produced<'s, read::Chunk<Act>, read::ReadError>,
    rows: std::vec::IntoIter<ActRow>,
    /// A row of a later partition, read while ending the current one.
    peeked: Option<(usize, ActRow)>,
    next_part: usize,
    plan: &'s Plan,
    /// Hashes of the act ids that occur more than once ([`first_pass`]).
    repeated: &'s HashSet<IdHash>,
    /// Ids whose hash is repeated, already kept once (an id that only shares its hash with
    /// another is kept once all the same).
    seen: HashSet<Id>,
    /// The last row's patient and where it was, to check the order.
    last: Option<(Id, usize, u64)>,
    /// Rows of the acts file refused while reading the current partition.
    rejects: Vec<Reject>,
    stats: &'s mut StreamStats,
    small: SmallTables<'s>,
    ben_files: &'s [String],
    act_files: &'s [String],
    rights_known: bool,
    order: Order,
    failed: bool,
    /// Acts of the last partition.
    last_rows: usize,
}

impl SortedStream<'_> {
    /// The next valid, non-duplicate row and its partition; `None` at the end of the input.
    fn next_row(&mut self) -> Result<Option<(usize, ActRow)>, RunError> {
        if let Some(peeked) = self.peeked.take() {
            return Ok(Some(peeked));
        }
        loop {
            let Some(act) = self.rows.next() else {
                match self.chunks.next() {
                    Some(chunk) => {
                        let chunk = chunk?;
                        self.stats.read += chunk.read;
                        self.rejects.extend(chunk.rejects);
                        self.rows = chunk.rows.into_iter();
                        continue;
                    }
                    None => return Ok(None),
                }
            };
            let value = &act.value;
            if let Some(last) = &self.last
                && value.patient_id < last.0
            {
                let here = (&value.patient_id, act.file, act.row);
                return Err(not_sorted(self.act_files, here, last, self.order));
            }
            self.last = Some((value.patient_id.clone(), act.file, act.row));
            self.stats.last_year = self.stats.last_year.max(Some(value.care_date.year()));
            let maybe_repeated = !self.repeated.is_empty()
                && self
                    .repeated
                    .contains(&partition::stable_hash(value.act_id.as_bytes()));
            if maybe_repeated && !self.seen.insert(value.act_id.clone()) {
                self.rejects.push(Reject {
                    file: self.act_files[act.file].clone(),
                    row: act.row,
                    act_id: value.act_id.to_string(),
                    column: "act_id".into(),
                    reason: "duplicate_act_id".into(),
                    value: value.act_id.to_string(),
                });
                continue;
            }
            return Ok(Some((self.plan.part_of(&value.patient_id), act)));
        }
    }

    fn next_partition(&mut self) -> Result<Prepared, RunError> {
        let part = self.next_part;
        // Partitions hold about as many acts each (their boundaries come from a sample): sized
        // from the last one, grown by an eighth past it. Doubling from empty copied each
        // partition's rows about twice more and held up to twice their size.
        let mut rows = Vec::with_capacity(self.last_rows + self.last_rows / 16);
        while let Some((p, act)) = self.next_row()? {
            if p > part {
                self.peeked = Some((p, act));
                break;
            }
            if rows.len() == rows.capacity() {
                rows.reserve_exact(rows.len() / 8 + STREAM_CHUNK_ROWS);
            }
            rows.push(act);
        }
        self.last_rows = rows.len();
        self.next_part += 1;
        let rejects = std::mem::take(&mut self.rejects);
        let small = SmallRows {
            bens: self.small.bens.take(part)?,
            rights: self.small.rights.take(part)?,
            counters: self.small.counters.take(part)?,
        };
        prepare_partition(
            small,
            self.small.counters_file,
            rows,
            rejects,
            self.ben_files,
            self.act_files,
            self.rights_known,
        )
    }
}

impl Iterator for SortedStream<'_> {
    type Item = Result<Prepared, RunError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next_part >= self.plan.parts() {
            return None;
        }
        let item = self.next_partition();
        self.failed = item.is_err();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::super::worker::tests::on_pool;
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn a_bar_shows_whole_counts_and_a_whole_rate() {
        // The template is valid (an invalid one falls back to indicatif's default bar).
        for step in ["first pass", "read", "compute+write"] {
            assert!(bar_style(step).is_ok(), "{step}");
        }
        assert_eq!(whole_rate(5_392_627.379_3), "5,392,627");
        assert_eq!(whole_rate(1_782_207.5), "1,782,208");
        assert_eq!(whole_rate(999.4), "999");
        // Before the first tick, and whatever indicatif reports.
        assert_eq!(whole_rate(0.0), "0");
        assert_eq!(whole_rate(f64::NAN), "0");
        assert_eq!(whole_rate(f64::INFINITY), "0");
    }

    #[test]
    fn a_cut_needs_room_for_a_second_copy_and_an_eighth() {
        // 800 bytes of files: 900 needed beside them.
        assert_eq!(no_room_to_cut(800, Some(899)), Some(900));
        assert_eq!(no_room_to_cut(800, Some(900)), None);
        assert_eq!(no_room_to_cut(800, Some(1 << 40)), None);
        // The room cannot be read: cut (the disk full, if it comes, fails the run with exit 1).
        assert_eq!(no_room_to_cut(800, None), None);
        // Nothing on disk needs nothing.
        assert_eq!(no_room_to_cut(0, Some(0)), None);
        assert_eq!(no_room_to_cut(u64::MAX, Some(u64::MAX - 1)), Some(u64::MAX));
    }

    /// A crowded partition of one patient's acts comes back whole, its file kept; one of two
    /// patients (every one sampled) is cut between them, by their acts.
    #[test]
    fn a_partition_of_one_patient_is_not_cut_and_one_of_two_is_cut_between_them() {
        let dir = tempfile::tempdir().unwrap();
        let spill = SpillDir {
            path: dir.path().to_path_buf(),
            io: SpillIo::Cached,
            compression: SpillCompression::None,
        };
        let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 4).unwrap();
        for (patients, expected) in [(1, vec![2_000]), (2, vec![1_500, 500])] {
            let from = spill.sub(&format!("from-{patients}"));
            let mut acts = from.store::<ActRow>(1, 1 << 10);
            for i in 0..2_000u64 {
                let patient = if patients == 2 && i % 4 == 3 {
                    "P2"
                } else {
                    "P1"
                };
                let act = Act::new(
                    &format!("A{i:05}"),
                    patient,
                    day,
                    crate::model::Category::Consultation,
                    rust_decimal::Decimal::ONE,
                );
                acts.push(
                    0,
                    Sourced {
                        file: 0,
                        row: i + 1,
                        value: act,
                    },
                )
                .unwrap();
            }
            let rows = PartRows {
                acts: acts.finish_on_disk().unwrap().detach(0),
                bens: from.store(1, 1 << 10).finish().unwrap().detach(0),
                rights: from.store(1, 1 << 10).finish().unwrap().detach(0),
                counters: from.store(1, 1 << 10).finish().unwrap().detach(0),
            };
            let bytes = rows.acts.bytes();
            let cut =
                cut_partition(rows, 3, &spill.sub(&format!("cut-{patients}")), 1 << 10).unwrap();
            let sizes: Vec<u64> = cut.iter().map(|piece| piece.acts.rows()).collect();
            assert_eq!(sizes, expected);
            if patients == 1 {
                assert!(cut[0].acts.on_disk());
                assert_eq!(cut[0].acts.bytes(), bytes, "the file kept as it was");
            }
            for (piece, patient) in cut.into_iter().zip(["P1", "P2"]) {
                let acts = piece.acts.load().unwrap();
                assert!(acts.iter().all(|a| a.value.patient_id == patient));
                // In the order they were pushed.
                assert!(acts.windows(2).all(|w| w[0].row < w[1].row));
            }
        }
    }

    #[test]
    fn a_partition_past_twice_its_share_and_a_thousand_acts_is_cut_in_shares() {
        // Within two shares, or under 1 024 acts: whole.
        assert_eq!(pieces_for(2_000, 1_000), None);
        assert_eq!(pieces_for(1_023, 100), None);
        assert_eq!(pieces_for(0, 0), None);
        // Past both: a share a piece, rounded up.
        assert_eq!(pieces_for(2_001, 1_000), Some(3));
        assert_eq!(pieces_for(1_024, 100), Some(11));
        assert_eq!(pieces_for(10_183, 239), Some(43));
        // At most 256 pieces (a spill file each, open at once).
        assert_eq!(pieces_for(9_700_000, 61_000), Some(160));
        assert_eq!(pieces_for(10_000_000, 1), Some(256));
    }

    /// A step of the reading: the (act rows read, accepted), and the (rows, bytes) of acts
    /// written.
    type Step = ((u64, u64), (u64, u64));

    /// Judges a room in `dir` for `expected` acts after each of `steps`; returns the outcome
    /// and the messages logged.
    fn judge(
        dir: &Path,
        expected: partition::Expected,
        steps: &[Step],
    ) -> (Result<(), String>, Vec<String>) {
        let logged = RefCell::new(Vec::new());
        let log = |_: &str, message: &str, _: &[(&str, u64)]| {
            logged.borrow_mut().push(message.to_string());
        };
        let mut room = Room {
            disk: dir,
            shown: Path::new("/scratch"),
            expected,
            compression: SpillCompression::Lz4,
            judged: false,
        };
        let mut outcome = Ok(());
        for &(read, acts) in steps {
            if let Err(e) = room.judge(read, acts, (0, 0), &log) {
                outcome = Err(e.to_string());
                break;
            }
        }
        (outcome, logged.into_inner())
    }

    /// Jobs that return their number and the thread that ran them, after sleeping longer for
    /// the first ones (so that later items are made first); job `fail`, if any, fails.
    fn numbered_jobs(
        n: usize,
        fail: Option<usize>,
    ) -> Vec<impl FnOnce() -> Result<(usize, String), String> + Send> {
        (0..n)
            .map(|i| {
                move || {
                    std::thread::sleep(Duration::from_millis((n - i) as u64 * 3));
                    if Some(i) == fail {
                        return Err(format!("job {i} failed"));
                    }
                    let thread = std::thread::current().name().unwrap_or("").to_string();
                    Ok((i, thread))
                }
            })
            .collect()
    }

    #[test]
    fn items_made_on_several_threads_come_in_the_jobs_order() {
        let made: Vec<(usize, String)> = on_pool(4, || {
            std::thread::scope(|scope| {
                let items = produce_ordered(scope, "test-load", 3, numbered_jobs(10, None));
                items.unwrap().collect::<Result<_, _>>().unwrap()
            })
        });
        let order: Vec<usize> = made.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
        // Job i on thread i mod 3.
        for (i, thread) in &made {
            assert_eq!(*thread, format!("test-load-{}", i % 3));
        }
        // One producer: the one thread of `produce`, in the same order.
        let made: Vec<(usize, String)> = on_pool(4, || {
            std::thread::scope(|scope| {
                let items = produce_ordered(scope, "test-load", 1, numbered_jobs(4, None));
                items.unwrap().collect::<Result<_, _>>().unwrap()
            })
        });
        assert_eq!(
            made,
            (0..4)
                .map(|i| (i, "test-load".to_string()))
                .collect::<Vec<_>>()
        );
        // A pool of one thread: made in line, on the consumer's thread (the pool's, unnamed).
        let made: Vec<(usize, String)> = std::thread::scope(|scope| {
            on_pool(1, || {
                let items = produce_ordered(scope, "test-load", 3, numbered_jobs(3, None));
                items.unwrap().collect::<Result<_, _>>().unwrap()
            })
        });
        let in_line: Vec<(usize, String)> = (0..3).map(|i| (i, String::new())).collect();
        assert_eq!(made, in_line);
    }

    #[test]
    fn items_stop_at_the_first_error_in_the_jobs_order() {
        let items: Vec<Result<usize, String>> = on_pool(4, || {
            std::thread::scope(|scope| {
                let items = produce_ordered(scope, "test-load", 3, numbered_jobs(9, Some(4)));
                items.unwrap().map(|item| item.map(|(i, _)| i)).collect()
            })
        });
        // Items 0 to 3, the error of job 4; then the thread that failed has stopped (job 7
        // was its next), and the items end where its next one would be.
        assert_eq!(
            items,
            [
                Ok(0),
                Ok(1),
                Ok(2),
                Ok(3),
                Err("job 4 failed".to_string()),
                Ok(5),
                Ok(6)
            ]
        );
    }

    #[test]
    fn auto_compression_keeps_the_spill_files_as_they_are_where_they_fit_else_compresses_them_as_little_as_fits()
     {
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::generate::GenerateOptions {
            acts: 20_000,
            patients: 2_000,
            ..Default::default()
        };
        let files = crate::generate::generate(&opts, dir.path()).unwrap().files;
        let inputs = Inputs {
            acts: files[0].clone(),
            beneficiaries: files[1].clone(),
            rights: None,
            counters: None,
            read: ReadOptions::default(),
        };
        // A read buffer of 32 MiB (or one read chunk) spread over the partitions, or the
        // chunk alone over the 500 partitions of a 1 MiB limit.
        assert_eq!(batch_rows(32 << 20, 350, 164), 95_869 / 164);
        assert_eq!(batch_rows((1 << 20) / 6, 350, 500), 65_536 / 500);
        assert_eq!(batch_rows(0, 0, 0), 65_536);
        let rows = 1_000_000;
        let stores = |parts, budget| SpillStores {
            parts,
            budget,
            carried: 0,
        };
        // README: about 190 bytes an act and its id as they are, a third of that with LZ4,
        // a fifth with zstd.
        let projected = spill_projection(&inputs.acts, &inputs.read, rows, &stores(4, 32 << 20));
        let projected = projected.unwrap();
        let [none, lz4, zstd] = projected.map(|bytes| bytes / rows);
        assert!((150..=300).contains(&none), "{none} bytes an act");
        assert!(lz4 * 2 < none && zstd < lz4, "{none}, {lz4}, {zstd}");
        // Small batches take more bytes an act, compressed more so.
        let tiny = spill_projection(&inputs.acts, &inputs.read, rows, &stores(500, 174_762));
        let tiny = tiny.unwrap();
        assert!(tiny[0] > projected[0], "{tiny:?} {projected:?}");
        assert!(tiny[1] * 10 > projected[1] * 13, "{tiny:?} {projected:?}");

        let choose = |expected: partition::Expected, free: Option<u64>, acts: &Path| {
            let logged = RefCell::new(Vec::new());
            let log = |_: &str, message: &str, _: &[(&str, u64)]| {
                logged.borrow_mut().push(message.to_string());
            };
            let inputs = Inputs {
                acts: acts.to_path_buf(),
                ..inputs.clone()
            };
            let room = SpillRoom {
                free,
                shown: Path::new("/scratch"),
            };
            let chosen = auto_compression(&inputs, expected, stores(4, 32 << 20), room, &log);
            (chosen, logged.into_inner())
        };
        let exact = partition::Expected { rows, exact: true };
        // The free bytes at which each way just fits, taken at 125 %.
        let fits = |k: usize| projected[k] * partition::SPILL_PROJECTION_PERCENT / 100;
        let acts = inputs.acts.as_path();
        // Room for the bound: nothing projected, nothing said.
        let roomy = Some(rows * partition::SPILL_BOUND_PER_ACT);
        assert_eq!(choose(exact, roomy, acts), (SpillCompression::None, vec![]));
        // Under the bound, room for the files as they are: kept, and said.
        let (chosen, logged) = choose(exact, Some(fits(0)), acts);
        assert_eq!(chosen, SpillCompression::None);
        assert_eq!(logged.len(), 1);
        let message = &logged[0];
        let start = format!(
            "spill files projected at about {} MiB as they are ({} MiB with lz4, {} with zstd; 1000000 acts expected), ",
            mib(projected[0]),
            mib(projected[1]),
            mib(projected[2]),
        );
        assert!(message.starts_with(&start), "{message}");
        assert!(
            message.ends_with(" MiB free in /scratch: kept as they are (--spill-compression auto)"),
            "{message}"
        );
        // A byte short of that: LZ4, down to its own bytes; then zstd; and zstd still when
        // nothing fits, said.
        for (free, way, said) in [
            (
                fits(0) - 1,
                SpillCompression::Lz4,
                ": compressed with lz4 (",
            ),
            (fits(1), SpillCompression::Lz4, ": compressed with lz4 ("),
            (
                fits(1) - 1,
                SpillCompression::Zstd,
                ": compressed with zstd (",
            ),
            (
                fits(2) - 1,
                SpillCompression::Zstd,
                ": compressed with zstd, which may still not fit: ",
            ),
        ] {
            let (chosen, logged) = choose(exact, Some(free), acts);
            assert_eq!(chosen, way, "{free}");
            assert!(logged[0].contains(said), "{free}: {}", logged[0]);
        }
        // Acts counted from a CSV file's size: said.
        let estimated = partition::Expected { rows, exact: false };
        let (_, logged) = choose(estimated, Some(fits(1)), acts);
        assert!(
            logged[0].contains("1000000 acts expected, estimated from the size of a CSV file)"),
            "{}",
            logged[0]
        );
        // A room that cannot be read, or acts that cannot: as they are, nothing said (the
        // reading reports the acts in its turn).
        assert_eq!(choose(exact, None, acts), (SpillCompression::None, vec![]));
        let gone = dir.path().join("gone.parquet");
        assert_eq!(
            choose(exact, Some(0), &gone),
            (SpillCompression::None, vec![])
        );
    }

    #[test]
    fn every_acts_file_is_judged_up_to_sixty_four_then_as_many_spread_over_them() {
        assert_eq!(head_files(0), [0]);
        assert_eq!(head_files(1), [0]);
        assert_eq!(head_files(12), (0..12).collect::<Vec<_>>());
        assert_eq!(head_files(64), (0..64).collect::<Vec<_>>());
        let spread = head_files(1_000);
        assert_eq!(spread.len(), 64);
        assert_eq!(spread[..4], [0, 15, 31, 46]);
        assert_eq!(spread[63], 984);
        assert!(spread.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_row_set_holds_the_rows_inserted_and_no_other() {
        let origin = |file, row| Origin { file, row };
        let mut set = RowSet::default();
        assert!(set.is_empty());
        assert!(!set.contains(origin(0, 0)));
        let rows = [
            (2, 1),
            (2, 63),
            (2, 64),
            (0, 1_000_003),
            (2, 1),
            (5, 100_007),
        ];
        for (file, row) in rows {
            set.insert(origin(file, row));
        }
        assert_eq!(set.rows, 5);
        for (file, row) in rows {
            assert!(set.contains(origin(file, row)), "{file} {row}");
        }
        for (file, row) in [
            (2, 0),
            (2, 2),
            (2, 62),
            (2, 65),
            (0, 1),
            (1, 1),
            (9, 1),
            (0, 1_000_002),
        ] {
            assert!(!set.contains(origin(file, row)), "{file} {row}");
        }
        assert!(!set.is_empty());
    }

    #[test]
    fn the_room_is_judged_once_a_32nd_of_the_acts_to_spill_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        // A 32nd of 3 200 acts written, all read accepted: 31 times as many bytes still to
        // come, 1.55 times the free space.
        let expected = 3_200;
        let all = (100, 100);
        let too_much = (100, free / 20);
        let exact = partition::Expected {
            rows: expected,
            exact: true,
        };
        let (outcome, logged) = judge(dir.path(), exact, &[(all, too_much)]);
        let message = outcome.unwrap_err();
        assert!(
            message.starts_with("the spill files need about "),
            "{message}"
        );
        assert!(message.contains(" MiB more in /scratch ("), "{message}");
        assert!(message.contains("3200 acts expected"), "{message}");
        assert!(
            message.ends_with(
                "give --temp-dir a larger disk, or --spill-compression zstd (about half of LZ4's bytes)"
            ),
            "{message}"
        );
        assert!(logged.is_empty());
        // Half the rows read rejected (not spilled): 1 600 acts to spill, 15 times as many
        // bytes still to come, three quarters of the free space: it fits.
        let (outcome, _) = judge(dir.path(), exact, &[((200, 100), too_much)]);
        assert!(outcome.is_ok());
        // Before a 32nd is written, nothing is judged; after the judgement, nothing more.
        let (outcome, _) = judge(dir.path(), exact, &[(all, (0, 0)), ((99, 99), (99, free))]);
        assert!(outcome.is_ok());
        let (outcome, _) = judge(dir.path(), exact, &[(all, (100, 1)), (all, too_much)]);
        assert!(outcome.is_ok());
        // Estimated acts (a CSV file): logged, and the run goes on.
        let estimated = partition::Expected {
            rows: expected,
            exact: false,
        };
        let (outcome, logged) = judge(dir.path(), estimated, &[(all, too_much)]);
        assert!(outcome.is_ok());
        assert_only_estimate_logged(&logged, "the spill files need about ");
        // A disk whose room cannot be read: said, not judged.
        let gone = dir.path().join("gone");
        let (outcome, logged) = judge(&gone, exact, &[(all, too_much)]);
        assert!(outcome.is_ok());
        assert_eq!(
            logged,
            ["the room left on the spill files' disk cannot be read: not judged"]
        );
    }

    #[test]
    fn outputs_short_by_projects_the_bytes_still_to_write() {
        // What the outputs would lack, `written` bytes for the first `done` of `expected` acts
        // and `rejects` bytes of `rejects.csv` to write.
        let short = |expected, done, written, rejects: u64, free, freed| {
            short_by(
                bytes_to_write(expected, done, written).saturating_add(rejects),
                free,
                freed,
            )
        };
        // 100 bytes for 10 of 50 acts: 400 more.
        assert_eq!(short(50, 10, 100, 0, 399, 0), Some(1));
        assert_eq!(short(50, 10, 100, 0, 400, 0), None);
        // Spill files given back before the end count as room.
        assert_eq!(short(50, 10, 100, 0, 300, 100), None);
        assert_eq!(short(50, 10, 100, 0, 300, 99), Some(1));
        // The rejects so far are written too.
        assert_eq!(short(50, 10, 100, 50, 449, 0), Some(1));
        assert_eq!(short(50, 10, 100, 50, 450, 0), None);
        // Nothing done yet, or everything: nothing to project.
        assert_eq!(short(50, 0, 0, 0, 0, 0), None);
        assert_eq!(short(50, 50, 100, 0, 0, 0), None);
        // No overflow on large figures.
        assert_eq!(short(u64::MAX, 1, u64::MAX, 1, 0, 0), Some(u64::MAX));
    }

    /// An [`OutputRoom`] for `expected` acts whose staging folder holds `written` bytes, and
    /// whose spill folder, if any, `spilled` (sparse files: no disk is used).
    fn output_room(
        dir: &Path,
        expected: partition::Expected,
        written: u64,
        spilled: Option<u64>,
    ) -> OutputRoom {
        let staging = dir.join("staging");
        std::fs::create_dir_all(staging.join(".spill")).unwrap();
        let file = std::fs::File::create(staging.join("acts.parquet")).unwrap();
        file.set_len(written).unwrap();
        // Half in the spill folder, half in a cut partition's folder within it.
        let spill = spilled.map(|bytes| {
            let spill = staging.join(".spill");
            std::fs::create_dir(spill.join("cut-00003")).unwrap();
            for (name, len) in [
                ("acts-00000.arrows", bytes / 2),
                ("cut-00003/acts-00001.arrows", bytes - bytes / 2),
            ] {
                let file = std::fs::File::create(spill.join(name)).unwrap();
                file.set_len(len).unwrap();
            }
            spill
        });
        OutputRoom::new(&staging, Path::new("/results"), expected, spill.as_deref())
    }

    #[test]
    fn the_room_for_the_outputs_is_judged_once_with_the_spill_files_to_be_freed() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        let sample = OUTPUT_ROOM_MIN_ACTS;
        let exact = partition::Expected {
            rows: 32 * sample,
            exact: true,
        };
        let logged = RefCell::new(Vec::new());
        let log = |_: &str, message: &str, _: &[(&str, u64)]| {
            logged.borrow_mut().push(message.to_string());
        };
        // A 32nd of the acts took a 20th of the free bytes: 31 times as many to come, 1.55
        // times the room.
        let mut room = output_room(dir.path(), exact, free / 20, None);
        // Not before a 32nd of the acts (nor before OUTPUT_ROOM_MIN_ACTS).
        room.judge(sample - 1, 0, &log).unwrap();
        let message = room.judge(sample, 0, &log).unwrap_err().to_string();
        assert!(message.starts_with("the outputs need about "), "{message}");
        assert!(
            message.contains(&format!(
                " MiB more in /results than it will have ({} bytes an act so far, {} acts to write, ",
                free / 20 / sample,
                32 * sample
            )),
            "{message}"
        );
        assert!(
            message.ends_with(" MiB free): give --out a larger disk"),
            "{message}"
        );
        // Once only.
        room.judge(2 * sample, 0, &log).unwrap();
        // The spill files still to read, on the same disk, will be deleted before the end:
        // with a free disk's worth of them, the outputs fit (not with half of them, those in a
        // cut partition's folder left out: 1.55 times the free bytes to write, 1.5 of room).
        let dir = tempfile::tempdir().unwrap();
        let mut room = output_room(dir.path(), exact, free / 20, Some(free));
        room.judge(sample, 0, &log).unwrap();
        assert_eq!(
            logged.borrow_mut().pop().as_deref(),
            Some("the outputs fit on their disk")
        );
        // Not with a free disk's worth of rejects to write into `rejects.csv` as well.
        let dir = tempfile::tempdir().unwrap();
        let mut room = output_room(dir.path(), exact, free / 20, Some(free));
        let message = room.judge(sample, free, &log).unwrap_err().to_string();
        assert!(
            message.contains(&format!(" acts to write, {} MiB of rejects, ", mib(free))),
            "{message}"
        );
        // Acts counted from a CSV file's size: logged, and the run goes on.
        let dir = tempfile::tempdir().unwrap();
        let estimated = partition::Expected {
            exact: false,
            ..exact
        };
        let mut room = output_room(dir.path(), estimated, free / 20, None);
        room.judge(sample, 0, &log).unwrap();
        assert_only_estimate_logged(&logged.into_inner(), "the outputs need about ");
    }

    /// `logged` is one message starting with `start`, said of acts estimated from a CSV file.
    fn assert_only_estimate_logged(logged: &[String], start: &str) {
        assert_eq!(logged.len(), 1, "{logged:?}");
        assert!(
            logged[0].starts_with(start)
                && logged[0]
                    .ends_with("(the acts are counted from the size of a CSV file: going on)"),
            "{logged:?}"
        );
    }
}
