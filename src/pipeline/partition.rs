//! How a run is cut into partitions of patients that fit in memory.
//!
//! Partitions are ranges of `patient_id`, not hash buckets: their boundaries come from a
//! sample of the beneficiaries' ids or, when the acts' patients are known to be sampled
//! (sorted acts) or found not to be the beneficiaries, of those, taken by a stable hash (the
//! ids with the smallest hashes, whatever the order of the file), so that they hold about as
//! many patients each. Because
//! they are ranges, processing them in order writes every output in `patient_id` order, the
//! same bytes as a run that held everything in memory, whatever the number of partitions,
//! the memory limit or the thread count.

use std::collections::BinaryHeap;

use rustc_hash::FxHashSet as HashSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::io::read::{self, ReadError, ReadOptions};
use crate::model::Id;

/// A stable 64-bit hash (FNV-1a, then a final mix): the same on every machine and version,
/// unlike `std`'s.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finaliser: FNV alone leaves the low bits weak for short ids.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The partitions of a run: `boundaries[j - 1]` is the first id of partition `j`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    boundaries: Vec<Id>,
    /// The first 8 bytes of each boundary, big-endian (zero-padded): most comparisons end
    /// on them, without reading the ids.
    prefixes: Vec<u64>,
}

/// The first 16 bytes of `id` as a big-endian number, zero-padded: ordered like the ids
/// (`id_prefix(a) < id_prefix(b)` implies `a < b` in byte order; equal prefixes decide
/// nothing).
pub fn id_prefix(id: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = id.len().min(16);
    bytes[..n].copy_from_slice(&id[..n]);
    u128::from_be_bytes(bytes)
}

/// The first 8 bytes of `id` (see [`id_prefix`]).
fn prefix(id: &[u8]) -> u64 {
    (id_prefix(id) >> 64) as u64
}

impl Plan {
    /// Cuts the ids seen by `sampler` into (at most) `parts` ranges of about as many ids.
    pub fn from_sample(sampler: Sampler, parts: usize) -> Plan {
        let ids = sampler.sorted();
        let parts = parts.clamp(1, ids.len().max(1));
        Plan::new(
            (1..parts)
                .map(|j| ids[j * ids.len() / parts].clone())
                .collect(),
        )
    }

    /// Cuts the ids seen by `sampler` into (at most) `parts` ranges of about as much weight
    /// each, `weight` of a sampled id being the rows it stands for (its acts): ranges of
    /// as many acts, whatever how many each patient has. An id heavier than a range's share
    /// takes a range alone (fewer ranges, then).
    pub fn from_weighted_sample(
        sampler: Sampler,
        parts: usize,
        weight: impl Fn(&str) -> u64,
    ) -> Plan {
        let ids = sampler.sorted();
        let weights: Vec<u64> = ids.iter().map(|id| weight(id)).collect();
        let total: u64 = weights.iter().sum();
        let parts = parts.clamp(1, ids.len().max(1)) as u64;
        let mut boundaries = Vec::with_capacity(parts as usize);
        let mut before = 0u64;
        let mut next = 1u64;
        // An id opens the next range when its middle is past that range's start: it goes
        // to the range it weighs most in (a heavy id after light ones opens one of its own).
        let past = |before: u64, w: u64, next: u64| (2 * before + w) * parts >= 2 * next * total;
        for (id, &w) in ids.iter().zip(&weights) {
            if before > 0 && next < parts && past(before, w, next) {
                boundaries.push(id.clone());
                while next < parts && past(before, w, next) {
                    next += 1;
                }
            }
            before += w;
        }
        Plan::new(boundaries)
    }

    /// This plan, with each range that holds more than twice its share of `other`'s ids (a
    /// sample of another table's, planned in `parts` ranges) cut into ranges of about a share:
    /// a range is then crowded by neither table. Ranges within their share stay as they are.
    pub fn split_crowded(self, other: Sampler, parts: usize) -> Plan {
        let ids = other.sorted();
        let share = ids.len().div_ceil(parts.max(1)).max(1);
        let mut boundaries = Vec::with_capacity(self.boundaries.len());
        let mut start = 0;
        for j in 0..=self.boundaries.len() {
            let end = match self.boundaries.get(j) {
                Some(b) => start + ids[start..].partition_point(|id| id < b),
                None => ids.len(),
            };
            let n = end - start;
            if n > 2 * share {
                let pieces = n.div_ceil(share);
                boundaries.extend((1..pieces).map(|p| ids[start + p * n / pieces].clone()));
            }
            boundaries.extend(self.boundaries.get(j).cloned());
            start = end;
        }
        Plan::new(boundaries)
    }

    /// The plan of these first ids (in order; repeats are dropped).
    fn new(mut boundaries: Vec<Id>) -> Plan {
        boundaries.dedup();
        let prefixes = boundaries.iter().map(|b| prefix(b.as_bytes())).collect();
        Plan {
            boundaries,
            prefixes,
        }
    }

    pub fn parts(&self) -> usize {
        self.boundaries.len() + 1
    }

    /// The partition of a patient.
    pub fn part_of(&self, patient_id: &str) -> usize {
        let key = prefix(patient_id.as_bytes());
        // Boundaries whose prefix is below the id's are below it; those above, above it.
        let low = self.prefixes.partition_point(|&p| p < key);
        let high = low + self.prefixes[low..].partition_point(|&p| p <= key);
        low + self.boundaries[low..high].partition_point(|b| b.as_str() <= patient_id)
    }
}

/// Keeps the `k` distinct ids with the smallest stable hashes (a bottom-k sample): the same
/// sample whatever the order in which the ids are seen, and however often each is.
#[derive(Debug)]
pub struct Sampler {
    k: usize,
    heap: BinaryHeap<(u64, Id)>,
    /// The ids in `heap`: an id seen again (an act's patient) takes no second place.
    held: HashSet<Id>,
}

impl Sampler {
    pub fn new(k: usize) -> Sampler {
        Sampler {
            k: k.max(1),
            heap: BinaryHeap::new(),
            held: HashSet::default(),
        }
    }

    /// Whether as many ids were seen as it keeps (some may have been left out).
    pub fn is_full(&self) -> bool {
        self.heap.len() >= self.k
    }

    /// The ids kept, in no order.
    pub fn ids(&self) -> impl Iterator<Item = &Id> {
        self.held.iter()
    }

    /// The ids kept, in order.
    fn sorted(self) -> Vec<Id> {
        let mut ids: Vec<Id> = self.heap.into_iter().map(|(_, id)| id).collect();
        ids.sort_unstable();
        ids
    }

    pub fn add(&mut self, id: &str) {
        let h = stable_hash(id.as_bytes());
        if self.heap.len() < self.k {
            if self.held.insert(Id::from(id)) {
                self.heap.push((h, Id::from(id)));
            }
        } else if let Some(top) = self.heap.peek()
            && (h, id) < (top.0, top.1.as_str())
            && !self.held.contains(id)
        {
            if let Some((_, out)) = self.heap.pop() {
                self.held.remove(&out);
            }
            self.held.insert(Id::from(id));
            self.heap.push((h, Id::from(id)));
        }
    }
}

/// Parses a size such as `512M`, `4G`, `1.5GiB` or `1000000` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text}: a size such as 512M or 4G"))?;
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(format!("{text}: unit K, M, G or T")),
    };
    let bytes = value * factor as f64;
    if !(bytes.is_finite() && bytes >= 1.0) {
        return Err(format!("{text}: must be positive"));
    }
    // 2^64 and more do not fit: the cast would make them u64::MAX without a word.
    if bytes >= u64::MAX as f64 {
        return Err(format!("{text}: too large"));
    }
    Ok(bytes as u64)
}

/// The default memory limit: half of the memory this process may use, and where that figure
/// came from (for the log).
pub fn default_memory_limit() -> (u64, &'static str) {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
    let group = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|groups| cgroup_memory_limit(&groups, Path::new("/sys/fs/cgroup")));
    memory_limit_from(machine, group)
}

/// Half of the tighter of the machine's memory and its control group's limit; 4 GiB when
/// neither is known.
fn memory_limit_from(machine: Option<u64>, group: Option<u64>) -> (u64, &'static str) {
    match (machine, group) {
        (Some(m), Some(g)) if g < m => (g / 2, "half of the control group's memory limit"),
        (None, Some(g)) => (g / 2, "half of the control group's memory limit"),
        (Some(m), _) => (m / 2, "half of the machine's memory"),
        (None, None) => (4 << 30, "4 GiB (the machine's memory is unknown)"),
    }
}

/// The memory limit of the control group this process runs in (a container's, a systemd
/// unit's `MemoryMax`, a batch scheduler's job): the lowest `memory.max` (cgroup v2) or
/// `memory.limit_in_bytes` (v1) from its group up to the root of the hierarchy, under `root`
/// (`/sys/fs/cgroup`). `groups` is `/proc/self/cgroup`. A machine's memory is not what a
/// container may use: a run sized on it is killed by the container's limit.
pub fn cgroup_memory_limit(groups: &str, root: &Path) -> Option<u64> {
    let mut lowest: Option<u64> = None;
    for line in groups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // v2: one line `0::/path`, the hierarchy at the root (or at `unified`, in the hybrid
        // layout). v1: the line whose controllers include `memory`.
        let (mounts, file) = if controllers.is_empty() {
            (vec![root.to_path_buf(), root.join("unified")], "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (vec![root.join("memory")], "memory.limit_in_bytes")
        } else {
            continue;
        };
        for mount in mounts {
            // Inside a container the path may be another namespace's: what is not there is
            // skipped, up to the mount's root (the container's own group).
            let mut dir = mount.join(path.trim_start_matches('/'));
            loop {
                let limit = std::fs::read_to_string(dir.join(file))
                    .ok()
                    .and_then(|text| text.trim().parse::<u64>().ok())
                    // v1 writes "no limit" as a number near 2^63; v2 writes `max`.
                    .filter(|&bytes| bytes < 1 << 62);
                if let Some(limit) = limit {
                    lowest = Some(lowest.map_or(limit, |l| l.min(limit)));
                }
                if dir == mount || !dir.pop() {
                    break;
                }
            }
        }
    }
    lowest
}

/// Bytes of memory an act costs while its partition is computed: the row read (`Act` and
/// origin, ids inline), its copy grouped by patient, its outcome and its share of the
/// writers' buffers. From the peak RSS of an in-memory run of 1 M generated acts (about
/// 1 GiB), rounded up.
pub const ACT_COST: u64 = 1_100;

/// How many times an act's carried values (`--keep-columns`) are held while its partition is
/// computed: in the act (shared with its outcome) and in the spill file's batch it is loaded
/// from, which the next partition's loading holds beside the one computed. With it, the
/// peak RSS of a run whose acts carry one column of 2 000 characters follows the limit as
/// it does without (see README, Memory).
pub const CARRIED_COPIES: u64 = 2;

/// Bytes of memory an act costs whose carried values take `carried_bytes` on the heap
/// ([`carried_bytes_per_act`]).
pub fn act_cost(carried_bytes: u64) -> u64 {
    ACT_COST + CARRIED_COPIES * carried_bytes
}

/// Acts read from the start of each acts file to measure their carried values.
const CARRIED_SAMPLE_ROWS: usize = 4_096;

/// Acts files sampled, at most (the first ones): a folder of thousands would take seconds.
const CARRIED_SAMPLE_FILES: usize = 64;

/// The heap bytes of an act's carried values (`--keep-columns`), on average over the first
/// [`CARRIED_SAMPLE_ROWS`] acts of each of the first [`CARRIED_SAMPLE_FILES`] acts files,
/// rounded up; 0 when no column is carried. Measured on the rows rather than guessed per
/// column: one column may hold a code of 5 characters or a free text of 2 000.
pub fn carried_bytes_per_act(path: &Path, opts: &ReadOptions) -> Result<u64, ReadError> {
    if opts.carried.is_empty() {
        return Ok(0);
    }
    let (mut bytes, mut acts) = (0u64, 0u64);
    for file in read::resolve(path)?.iter().take(CARRIED_SAMPLE_FILES) {
        let sample = read::open_acts(file, opts)?.with_chunk_rows(CARRIED_SAMPLE_ROWS);
        if let Some(chunk) = sample.into_iter().next() {
            let chunk = chunk?;
            acts += chunk.rows.len() as u64;
            bytes += (chunk.rows.iter())
                .map(|r| r.value.carried.heap_bytes() as u64)
                .sum::<u64>();
        }
    }
    Ok(bytes.div_ceil(acts.max(1)))
}

/// Acts expected in an acts input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub rows: u64,
    /// From Parquet footers only: no CSV file was estimated.
    pub exact: bool,
}

/// Acts expected in `path`: exact for Parquet (from the footers), estimated from the size of
/// a CSV file and the length of its first lines (×5 for gzip).
pub fn estimate_rows(path: &Path) -> Result<Expected, ReadError> {
    let mut total = 0u64;
    let mut exact = true;
    for file in read::resolve(path)? {
        let shown = file.display().to_string();
        let io = |source: std::io::Error| ReadError::Io {
            file: shown.clone(),
            source,
        };
        let size = std::fs::metadata(&file).map_err(io)?.len();
        let mut head = vec![0u8; 64 << 10];
        let mut f = File::open(&file).map_err(io)?;
        let n = f.read(&mut head).map_err(io)?;
        head.truncate(n);
        if head.starts_with(b"PAR1") {
            let reader =
                parquet::file::reader::SerializedFileReader::new(File::open(&file).map_err(io)?)
                    .map_err(|e| ReadError::Parquet {
                        file: shown.clone(),
                        message: e.to_string(),
                    })?;
            use parquet::file::reader::FileReader;
            total += reader.metadata().file_metadata().num_rows().max(0) as u64;
        } else if head.starts_with(&[0x1f, 0x8b]) {
            total += size * 5 / 100;
            exact = false;
        } else {
            let lines = head.iter().filter(|&&b| b == b'\n').count().max(1) as u64;
            total += size * lines / (n.max(1) as u64);
            exact = false;
        }
    }
    Ok(Expected { rows: total, exact })
}

/// Spill bytes an act and its id take as they are, generously (about 190 for generated
/// acts with ids of 12 bytes, 270 in the small batches of a tiny `--memory-limit`), besides
/// its carried values: a spill disk with this much room per act expected is not looked at
/// further (`--spill-compression auto`).
pub const SPILL_BOUND_PER_ACT: u64 = 1_024;

/// Acts encoded to project the spill files' bytes (`--spill-compression auto`): the first
/// ones of the acts input.
pub const SPILL_SAMPLE_ROWS: usize = 16_384;

/// A projected spill is taken at this percentage of itself (`--spill-compression auto`): the
/// acts further on may be wider than the first ones, and the small tables spill beside them.
pub const SPILL_PROJECTION_PERCENT: u64 = 125;

/// `--spill-compression auto`: the first of `projected` (the spill files' bytes for each
/// compression, from the least CPU to the fewest bytes) that fits in `free` bytes at
/// [`SPILL_PROJECTION_PERCENT`], if one does.
pub fn fitting<C: Copy>(projected: &[(C, u64)], free: u64) -> Option<C> {
    let taken = |bytes: u64| u128::from(bytes) * u128::from(SPILL_PROJECTION_PERCENT) / 100;
    projected
        .iter()
        .find(|&&(_, bytes)| taken(bytes) <= u128::from(free))
        .map(|&(choice, _)| choice)
}

/// The spill files are judged once this share of the acts expected is on disk (a 32nd):
/// enough batches for their size per act, early enough to stop before the disk fills.
pub const ROOM_SAMPLE: u64 = 32;

/// Bytes the spill files still need, each store's `(rows, bytes)` written so far scaled to
/// `expected` rows (stores with nothing written yet count for nothing).
pub fn spill_still_needed(expected: u64, stores: &[(u64, u64)]) -> u64 {
    stores
        .iter()
        .filter(|&&(rows, _)| rows > 0)
        .map(|&(rows, bytes)| {
            let total = u128::from(bytes) * u128::from(expected.max(rows)) / u128::from(rows);
            u64::try_from(total).unwrap_or(u64::MAX) - bytes
        })
        .fold(0u64, u64::saturating_add)
}

/// Largest partition, in bytes of acts, even with memory to spare: past it a partition's
/// rows no longer fit in the caches and the allocator returns to the OS for each one (10 M
/// generated acts: 24 s with 164 partitions, 30 s with 11).
pub const PARTITION_TARGET: u64 = 64 << 20;

/// Partitions needed so that the partitions held at once take at most half of the limit
/// (one computed while `loaders` others are loaded, beside the read buffers and the
/// writers: with one loader, a quarter of the limit each), and at most [`PARTITION_TARGET`]
/// unless that needs more than [`MAX_PARTS_FOR_SPEED`] partitions.
pub fn parts_for(rows: u64, memory_limit: u64, act_cost: u64, loaders: usize) -> usize {
    let need = rows.saturating_mul(act_cost);
    let for_speed = need.div_ceil(PARTITION_TARGET).min(MAX_PARTS_FOR_SPEED);
    (parts_for_memory(rows, memory_limit, act_cost, loaders) as u64).max(for_speed) as usize
}

/// The partitions the memory limit alone asks for ([`parts_for`] without the ones asked for
/// speed).
pub fn parts_for_memory(rows: u64, memory_limit: u64, act_cost: u64, loaders: usize) -> usize {
    let need = rows.saturating_mul(act_cost);
    let held = 2 * (loaders.max(1) as u64 + 1);
    need.div_ceil((memory_limit / held).max(1)).max(1) as usize
}

/// Workers one partition loader keeps busy. Loading the partitions (reading their spill
/// files, rebuilding their acts, grouping them by patient) took 3.3–3.5 s of CPU, and
/// computing and writing them 12.5–13.0 s more (10 M acts, 2 workers, two runs, 2026-12-03:
/// the `partitions computed` log line): a loader keeps up with about 3.7 workers.
pub const WORKERS_PER_LOADER: usize = 4;

/// The partition loaders for a pool of `workers` threads: one per [`WORKERS_PER_LOADER`]
/// workers, rounded up. One loader is all that up to four workers need.
pub fn loaders_for(workers: usize) -> usize {
    workers.div_ceil(WORKERS_PER_LOADER).max(1)
}

/// The partitions to use when `wanted` need more open files than `file_limit` allows: the
/// most that it allows, if that is still at least what the memory limit asks for
/// (`for_memory`); else `wanted` (the run is then refused, naming the limit). Partitions asked
/// for speed alone are worth less than a run that goes through.
pub fn parts_within_open_files(
    wanted: usize,
    for_memory: usize,
    file_limit: u64,
    files_needed: impl Fn(usize) -> u64,
) -> usize {
    let mut most = wanted;
    while most > 1 && files_needed(most) > file_limit {
        most -= 1;
    }
    if files_needed(most) <= file_limit && most >= for_memory.max(2) {
        most
    } else {
        wanted
    }
}

/// Largest partition of acts sorted by patient, which are streamed, not spilled: a partition
/// then costs no spill file of acts, only its small tables', so smaller ones only hold less
/// at once. 10 M sorted acts (one run each): 164 partitions (the spilled runs' 64 MiB) peak
/// at 482–514 MiB, 328 at 434 MiB, 656 (16 MiB) at 412 MiB and 1 024 at 364 MiB, all in
/// 11.7–12.3 s.
pub const STREAM_PARTITION_TARGET: u64 = 16 << 20;

/// [`parts_for`] for acts sorted by patient: partitions of at most
/// [`STREAM_PARTITION_TARGET`], unless that needs more than [`MAX_STREAM_PARTS`].
pub fn parts_for_stream(rows: u64, memory_limit: u64, act_cost: u64) -> usize {
    let need = rows.saturating_mul(act_cost);
    let for_size = need.div_ceil(STREAM_PARTITION_TARGET).min(MAX_STREAM_PARTS);
    // One loader: the stream is read in order.
    for_size.max(parts_for(rows, memory_limit, act_cost, 1) as u64) as usize
}

/// Streamed partitions asked for their size alone stop here: the beneficiaries, rights and
/// counters are still routed to one spill file per partition, all open at once.
const MAX_STREAM_PARTS: u64 = 1024;

/// Partitions asked for speed alone stop here (each holds an open spill file while reading);
/// the memory limit may ask for more. 100 M generated acts (one run each, 2026-12-02): 256
/// partitions (390 000 acts each) 130.1 s and 958 MiB peak RSS, 512 partitions 132.9 s and
/// 726 MiB, 1 093 partitions 130.0 s and 524 MiB: the same time within the noise, and the
/// 1 GiB of the scale issue kept at a distance. 1 024 need 1 216 open files: more than the
/// soft limit of many systems, which is raised (or the partitions fewer, if the hard limit
/// refuses: [`parts_within_open_files`]).
const MAX_PARTS_FOR_SPEED: u64 = 1024;

#[cfg(test)]
mod tests {
    use std::fs;

    /// Writes `text` into `root/path`, making its folders.
    fn put(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn fitting_takes_the_first_way_that_fits_at_the_projection_percent() {
        let projected = [("none", 800), ("lz4", 400), ("zstd", 200)];
        // 800 bytes are taken at 1 000.
        assert_eq!(SPILL_PROJECTION_PERCENT, 125);
        assert_eq!(fitting(&projected, 1_000), Some("none"));
        assert_eq!(fitting(&projected, 999), Some("lz4"));
        assert_eq!(fitting(&projected, 500), Some("lz4"));
        assert_eq!(fitting(&projected, 499), Some("zstd"));
        assert_eq!(fitting(&projected, 250), Some("zstd"));
        assert_eq!(fitting(&projected, 249), None);
        assert_eq!(fitting::<&str>(&[], u64::MAX), None);
        // No overflow on huge projections.
        assert_eq!(fitting(&[("none", u64::MAX)], u64::MAX), None);
    }

    #[test]
    fn the_control_group_s_memory_limit_is_found_in_v1_and_v2_layouts() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        // v2, in a container (its own namespace: the group is `/`): the mount's root.
        put(root, "memory.max", "4294967296\n");
        assert_eq!(cgroup_memory_limit("0::/\n", root), Some(4 << 30));
        // v2 without a namespace: the process's group and its parents, the lowest wins.
        put(root, "batch.slice/memory.max", "max\n");
        put(root, "batch.slice/rac.service/memory.max", "2147483648\n");
        assert_eq!(
            cgroup_memory_limit("0::/batch.slice/rac.service\n", root),
            Some(2 << 30)
        );
        // A group path from another namespace, absent here: the mount's root still counts.
        assert_eq!(
            cgroup_memory_limit("0::/kubepods/pod1/abc\n", root),
            Some(4 << 30)
        );
        // No limit anywhere (`max`): none.
        put(root, "memory.max", "max\n");
        assert_eq!(cgroup_memory_limit("0::/\n", root), None);

        // v1 (this VM's layout): the line of the `memory` controller; "no limit" is a number
        // near 2^63.
        let v1 = "4:memory:/jobs/nightly\n3:cpuset:/\n0::/\n";
        put(
            root,
            "memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        assert_eq!(cgroup_memory_limit(v1, root), None);
        put(
            root,
            "memory/jobs/nightly/memory.limit_in_bytes",
            "1073741824\n",
        );
        assert_eq!(cgroup_memory_limit(v1, root), Some(1 << 30));
        // A hybrid layout's v2 hierarchy under `unified`, with a lower limit.
        put(root, "unified/jobs/memory.max", "536870912\n");
        assert_eq!(
            cgroup_memory_limit("4:memory:/jobs/nightly\n0::/jobs\n", root),
            Some(512 << 20)
        );
        // Nothing readable: none.
        assert_eq!(cgroup_memory_limit("garbage", root), None);
        assert_eq!(cgroup_memory_limit("0::/\n", &root.join("absent")), None);
    }

    #[test]
    fn partitions_asked_for_speed_give_way_to_the_open_file_limit_but_not_those_for_memory() {
        let needed = crate::pipeline::spill::files_needed;
        // 512 partitions need 640 files: under a limit of 600, the most that fit (476).
        assert_eq!(needed(512), 640);
        let fitted = parts_within_open_files(512, 40, 600, needed);
        assert_eq!(fitted, 476);
        assert!(needed(fitted) <= 600 && needed(fitted + 1) > 600);
        // Enough files: what was wanted.
        assert_eq!(parts_within_open_files(512, 40, 1024, needed), 512);
        // The memory limit asks for more than fit: kept (and the run refused, naming it).
        assert_eq!(parts_within_open_files(512, 500, 600, needed), 512);
        // Not even two partitions fit: kept.
        assert_eq!(parts_within_open_files(100, 1, 60, needed), 100);
    }

    #[test]
    fn the_default_limit_is_half_of_the_tighter_of_the_machine_and_its_group() {
        let gib = 1u64 << 30;
        assert_eq!(
            memory_limit_from(Some(256 * gib), Some(4 * gib)),
            (2 * gib, "half of the control group's memory limit")
        );
        assert_eq!(
            memory_limit_from(Some(24 * gib), Some(64 * gib)),
            (12 * gib, "half of the machine's memory")
        );
        assert_eq!(
            memory_limit_from(Some(24 * gib), None),
            (12 * gib, "half of the machine's memory")
        );
        assert_eq!(memory_limit_from(None, Some(8 * gib)).0, 4 * gib);
        assert_eq!(memory_limit_from(None, None).0, 4 * gib);
    }

    use super::*;

    #[test]
    fn the_spill_still_needed_is_what_was_written_scaled_to_every_act() {
        // A 32nd of 3 200 acts written, 210 bytes each, and their ids, 28 bytes each.
        let acts = (100, 21_000);
        let ids = (100, 2_800);
        assert_eq!(spill_still_needed(3_200, &[acts]), 31 * 21_000);
        assert_eq!(spill_still_needed(3_200, &[acts, ids]), 31 * 23_800);
        // A store that wrote nothing yet counts for nothing; every act written: nothing more.
        assert_eq!(spill_still_needed(3_200, &[acts, (0, 0)]), 31 * 21_000);
        assert_eq!(spill_still_needed(100, &[acts, ids]), 0);
        // More rows than expected (a CSV estimate too low): nothing more, not an underflow.
        assert_eq!(spill_still_needed(50, &[acts]), 0);
        // 2^40 acts, 210 bytes each: the product of bytes and acts is past a u64.
        assert_eq!(
            spill_still_needed(1 << 40, &[(1 << 20, 210 << 20)]),
            (210 << 40) - (210 << 20)
        );
        // Past a u64 itself: the most there is.
        assert_eq!(spill_still_needed(u64::MAX, &[(1, 2)]), u64::MAX - 2);
    }

    #[test]
    fn the_hash_is_stable() {
        // Fixed values (computed independently): a change here changes every partitioned
        // run's plan and act-id buckets.
        assert_eq!(stable_hash(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(stable_hash(b"P000001"), 0x709e_24b0_0698_8af2);
        assert_ne!(stable_hash(b"P1"), stable_hash(b"P2"));
    }

    proptest::proptest! {
        #[test]
        fn id_prefixes_are_ordered_like_the_ids(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24),
        ) {
            // A prefix lower means an id lower; ids in order have prefixes in order.
            if id_prefix(&a) < id_prefix(&b) {
                proptest::prop_assert!(a < b);
            }
            if a <= b {
                proptest::prop_assert!(id_prefix(&a) <= id_prefix(&b));
                proptest::prop_assert!(prefix(&a) <= prefix(&b));
            }
        }
    }

    #[test]
    fn weighted_ranges_hold_about_as_much_weight_each_and_a_heavy_id_its_own() {
        let sampled = |n: usize| {
            let mut sampler = Sampler::new(n);
            for i in 0..n {
                sampler.add(&format!("P{i:02}"));
            }
            sampler
        };
        let boundaries = |plan: &Plan| -> Vec<String> {
            plan.boundaries.iter().map(|b| b.to_string()).collect()
        };
        // Ten ids of one act each: two ranges of five.
        let even = Plan::from_weighted_sample(sampled(10), 2, |_| 1);
        assert_eq!(boundaries(&even), ["P05"]);
        // The last of ten weighs 91: alone in the second range (by count, P05 would cut).
        let heavy_last =
            Plan::from_weighted_sample(sampled(10), 2, |id| if id == "P09" { 91 } else { 1 });
        assert_eq!(boundaries(&heavy_last), ["P09"]);
        // The second of eight weighs 60 (of 67): a range before it, it alone, the rest;
        // the four ranges asked for are three.
        let heavy_second =
            Plan::from_weighted_sample(sampled(8), 4, |id| if id == "P01" { 60 } else { 1 });
        assert_eq!(boundaries(&heavy_second), ["P01", "P02"]);
        // Weights 1, 2, 3, 4 (10): three ranges of about 3.3 each.
        let rising = Plan::from_weighted_sample(sampled(4), 3, |id| match id {
            "P00" => 1,
            "P01" => 2,
            "P02" => 3,
            _ => 4,
        });
        assert_eq!(boundaries(&rising), ["P02", "P03"]);
        // A single id: one range.
        assert_eq!(Plan::from_weighted_sample(sampled(1), 4, |_| 9).parts(), 1);
    }

    #[test]
    fn ranges_follow_id_order_and_are_balanced() {
        let mut sampler = Sampler::new(1000);
        for i in (0..10_000).rev() {
            sampler.add(&format!("P{i:06}"));
        }
        let plan = Plan::from_sample(sampler, 4);
        assert_eq!(plan.parts(), 4);
        let mut counts = [0usize; 4];
        let mut last = 0;
        for i in 0..10_000 {
            let p = plan.part_of(&format!("P{i:06}"));
            assert!(p >= last, "partitions are ranges in id order");
            last = p;
            counts[p] += 1;
        }
        for c in counts {
            assert!((1_500..=3_500).contains(&c), "unbalanced: {counts:?}");
        }
    }

    #[test]
    fn the_sample_does_not_depend_on_order() {
        let ids: Vec<String> = (0..5_000)
            .map(|i| format!("X{}", i * 7919 % 5_000))
            .collect();
        let mut a = Sampler::new(50);
        ids.iter().for_each(|id| a.add(id));
        let mut b = Sampler::new(50);
        ids.iter().rev().for_each(|id| b.add(id));
        assert_eq!(Plan::from_sample(a, 5), Plan::from_sample(b, 5));
    }

    #[test]
    fn an_id_seen_again_takes_no_second_place_in_the_sample() {
        // Acts' patients: each id ten times, in no order.
        let mut acts = Sampler::new(400);
        for round in 0..10 {
            for i in 0..10_000 {
                acts.add(&format!("P{:06}", (i * 7_919 + round) % 10_000));
            }
        }
        let mut once = Sampler::new(400);
        (0..10_000).for_each(|i| once.add(&format!("P{i:06}")));
        assert_eq!(acts.heap.len(), 400);
        assert_eq!(acts.held.len(), 400);
        assert_eq!(Plan::from_sample(acts, 8), Plan::from_sample(once, 8));
    }

    #[test]
    fn ranges_crowded_with_another_table_s_ids_are_cut_and_the_others_kept() {
        let sample = |prefix: &str, n: usize| {
            let mut sampler = Sampler::new(400);
            (0..n).for_each(|i| sampler.add(&format!("{prefix}{i:06}")));
            sampler
        };
        let count = |plan: &Plan, prefix: &str, n: usize| {
            let mut counts = vec![0; plan.parts()];
            (0..n).for_each(|i| counts[plan.part_of(&format!("{prefix}{i:06}"))] += 1);
            counts
        };
        // Beneficiaries sampled like the acts' patients: nothing to cut.
        let acts = Plan::from_sample(sample("P", 10_000), 8);
        assert_eq!(acts.clone().split_crowded(sample("P", 10_000), 8), acts);
        // Beneficiaries of other ids, all below the acts': the first range held them all; it
        // is cut, and the acts' ranges stay.
        assert_eq!(count(&acts, "B", 10_000)[0], 10_000);
        let split = acts.clone().split_crowded(sample("B", 10_000), 8);
        assert_eq!(split.parts(), 8 + 7);
        for c in count(&split, "B", 10_000) {
            assert!(c <= 2_000, "{c}");
        }
        let acts_counts = count(&split, "P", 10_000);
        assert_eq!(acts_counts[..7], [0; 7], "{acts_counts:?}");
        assert_eq!(acts_counts[7..], count(&acts, "P", 10_000)[..]);
        // No other ids: nothing to cut.
        assert_eq!(acts.clone().split_crowded(Sampler::new(10), 8), acts);
    }

    #[test]
    fn few_patients_give_fewer_partitions() {
        let mut sampler = Sampler::new(100);
        sampler.add("B");
        sampler.add("A");
        let plan = Plan::from_sample(sampler, 8);
        assert_eq!(plan.parts(), 2);
        assert_eq!(plan.part_of("A"), 0);
        assert_eq!(plan.part_of("B"), 1);
        assert_eq!(plan.part_of("Z"), 1);
        assert_eq!(Plan::default().part_of("anything"), 0);
    }

    #[test]
    fn the_prefix_search_agrees_with_a_plain_search() {
        // Ids sharing long prefixes, shorter than 8 bytes, with zero bytes, and non-ASCII.
        let mut ids: Vec<String> = Vec::new();
        for i in 0..400u32 {
            ids.push(format!("PATIENT-{:04}", i * 37 % 400));
            ids.push(format!("P{i}"));
            ids.push(format!("AB\0{}", i % 3));
            ids.push(format!("é{i}"));
        }
        ids.extend(["", "A", "AB", "AB\0", "PATIENT-", "PATIENT-0000"].map(String::from));
        let mut sampler = Sampler::new(200);
        ids.iter().for_each(|id| sampler.add(id));
        let plan = Plan::from_sample(sampler, 40);
        assert!(plan.parts() > 20);
        for id in &ids {
            let plain = plan
                .boundaries
                .partition_point(|b| b.as_str() <= id.as_str());
            assert_eq!(plan.part_of(id), plain, "{id:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("4X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(parse_size("16777215T"), Ok(16_777_215 << 40));
        assert_eq!(
            parse_size("100000000000T"),
            Err("100000000000T: too large".to_string())
        );
        assert_eq!(parts_for(50_000, 1 << 40, ACT_COST, 1), 1);
        assert_eq!(parts_for(1_000_000, 1 << 40, ACT_COST, 1), 17);
        assert_eq!(parts_for(1_000_000, 4 * 1_100_000, ACT_COST, 1), 1_000);
        assert_eq!(parts_for(1_000_000_000, 1 << 40, ACT_COST, 1), 1024);
        // Two loaders: three partitions held at once, in half of the limit (a sixth each
        // instead of a quarter); three loaders, an eighth.
        assert_eq!(parts_for(1_000_000, 6 * 1_100_000, ACT_COST, 1), 667);
        assert_eq!(parts_for(1_000_000, 6 * 1_100_000, ACT_COST, 2), 1_000);
        assert_eq!(
            parts_for_memory(1_000_000, 8 * 1_100_000, ACT_COST, 3),
            1_000
        );
        assert_eq!(parts_for(1_000_000, 1 << 40, ACT_COST, 4), 17);
        // One loader up to four workers, then one more per four.
        let loaders: Vec<usize> = [1, 2, 4, 5, 8, 9, 16, 64].map(loaders_for).into();
        assert_eq!(loaders, [1, 1, 1, 2, 2, 3, 4, 16]);
        assert_eq!(act_cost(0), ACT_COST);
        // Sorted acts, streamed: partitions of 16 MiB, at most 1 024 unless memory asks more.
        assert_eq!(parts_for_stream(50_000, 1 << 40, ACT_COST), 4);
        assert_eq!(parts_for_stream(10_000_000, 1 << 40, ACT_COST), 656);
        assert_eq!(parts_for_stream(1_000_000_000, 1 << 40, ACT_COST), 1_024);
        assert_eq!(
            parts_for_stream(1_000_000, 4 * 1_100_000, ACT_COST),
            parts_for(1_000_000, 4 * 1_100_000, ACT_COST, 1)
        );
        // Carried values of 150 bytes an act, held twice: 1 400 bytes an act.
        assert_eq!(act_cost(150), 1_400);
        assert_eq!(parts_for(1_000_000, 4 * 1_100_000, act_cost(150), 1), 1_273);
    }

    #[test]
    fn carried_values_are_measured_on_the_first_acts_of_each_file() {
        let dir = tempfile::tempdir().unwrap();
        let header = "act_id,patient_id,care_date,category,tariff,quantity,billed";
        let line = |i: usize| format!("A{i},P{i},2024-03-01,drug_30,13.60,2,27.20");
        let note = "n".repeat(1_000);
        let wide: String = (0..4).map(|i| format!("{},{note}\n", line(i))).collect();
        std::fs::write(dir.path().join("a.csv"), format!("{header},note\n{wide}")).unwrap();
        // The second file lacks the column: its acts hold one empty value each.
        let plain: String = (4..8).map(|i| format!("{}\n", line(i))).collect();
        std::fs::write(dir.path().join("b.csv"), format!("{header}\n{plain}")).unwrap();

        let opts = ReadOptions {
            carried: std::sync::Arc::from(vec!["note".to_string()]),
            ..ReadOptions::default()
        };
        // Each act: the shared block (two counts, the slice's pointer and length) and a slice
        // of one value; half of them a value of 1 000 bytes besides.
        let block = 4 * std::mem::size_of::<usize>() + std::mem::size_of::<Option<Id>>();
        let expected = (block + 500) as u64;
        assert_eq!(carried_bytes_per_act(dir.path(), &opts).unwrap(), expected);
        assert_eq!(
            carried_bytes_per_act(dir.path(), &ReadOptions::default()).unwrap(),
            0
        );
    }

    #[test]
    fn carried_values_are_sampled_on_the_first_rows_of_the_first_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let header = "act_id,patient_id,care_date,category,tariff,quantity,note";
        let line = |i: usize, note: &str| format!("A{i},P{i},2024-03-01,drug_30,13.60,2,{note}\n");
        let wide = "w".repeat(1_000);
        // The first file: CARRIED_SAMPLE_ROWS short values, then wide ones, past the sample.
        let first: String = (0..CARRIED_SAMPLE_ROWS + 100)
            .map(|i| line(i, if i < CARRIED_SAMPLE_ROWS { "x" } else { &wide }))
            .collect();
        std::fs::write(dir.path().join("f000.csv"), format!("{header}\n{first}")).unwrap();
        // The next files short values; the one after the CARRIED_SAMPLE_FILES first, wide ones.
        for f in 1..=CARRIED_SAMPLE_FILES {
            let note = if f < CARRIED_SAMPLE_FILES { "x" } else { &wide };
            let rows: String = (0..4).map(|i| line(f * 10 + i, note)).collect();
            std::fs::write(
                dir.path().join(format!("f{f:03}.csv")),
                format!("{header}\n{rows}"),
            )
            .unwrap();
        }
        let opts = ReadOptions {
            carried: std::sync::Arc::from(vec!["note".to_string()]),
            ..ReadOptions::default()
        };
        // Short values are held inline: every sampled act holds the block and one value.
        let block = 4 * std::mem::size_of::<usize>() + std::mem::size_of::<Option<Id>>();
        assert_eq!(
            carried_bytes_per_act(dir.path(), &opts).unwrap(),
            block as u64
        );
    }
}
