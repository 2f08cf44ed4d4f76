//! Transparent huge pages (THP): off for a run of fewer acts than [`HUGE_PAGES_FROM_ACTS`].
//!
//! A run touches a few hundred MiB of fresh memory, a fixed cost, and then reuses it (the
//! allocator keeps freed pages, see `main.rs`). With 2 MiB pages the reuse is cheaper (fewer
//! TLB misses); in a virtual machine whose freed memory goes back to the host, the first touch
//! of a fresh 2 MiB page can be much dearer, the kernel's zeroing of it waiting on the host,
//! where 4 KiB pages mostly come from memory the guest still holds. Measured on the 2-core KVM
//! guest of the benchmarks (2026-12-03, commit d2560b4 against the same with THP off, the same
//! bytes):
//!
//! - 10 M acts, four alternated pairs: 15.6–16.7 s with huge pages (5.0–5.8 s of system time)
//!   against 13.0–13.4 s without (1.0–1.4 s); the user time 0.6–1.4 s higher without;
//! - 100 M acts, two alternated pairs: 137.2 and 138.6 s with against 149.1 and 144.2 s
//!   without; the system time 17.4 and 17.0 s against 24.6 and 17.6 s, the user time 9.5–11.7
//!   s higher without.
//!
//! So about 3.5 s saved at the start against about 0.12 s lost per million acts: even near
//! 30 M acts. Where huge pages come cheap (bare metal) turning them off only loses the user
//! time, a few per cent of a small run. `RAC_HUGE_PAGES` decides instead of the size.

use std::ffi::OsStr;

/// Acts from which a run keeps its transparent huge pages (see the module's figures).
pub const HUGE_PAGES_FROM_ACTS: u64 = 30_000_000;

/// `1` keeps the huge pages whatever the run's size, `0` turns them off.
pub const HUGE_PAGES_VARIABLE: &str = "RAC_HUGE_PAGES";

/// Whether a run of `acts` (expected) keeps its huge pages, given `RAC_HUGE_PAGES`'s value;
/// `Err` names a value other than `0` or `1`.
pub fn keep_huge_pages(acts: u64, variable: Option<&OsStr>) -> Result<bool, String> {
    match variable.map(|v| v.to_str()) {
        None => Ok(acts >= HUGE_PAGES_FROM_ACTS),
        Some(Some("1")) => Ok(true),
        Some(Some("0")) => Ok(false),
        Some(value) => Err(format!(
            "{HUGE_PAGES_VARIABLE}={}: 0 (off) or 1 (on), or unset (off under {HUGE_PAGES_FROM_ACTS} acts)",
            value.unwrap_or("(not UTF-8)")
        )),
    }
}

/// Turns the process's transparent huge pages off (Linux: `PR_SET_THP_DISABLE`; elsewhere,
/// nothing). The pages already faulted keep their size. Whether the kernel took it.
pub fn turn_off_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and sets only this process's flag;
        // a kernel without it returns an error, and the run goes on with huge pages.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// mimalloc's option number for the delay before freed pages go back to the system (its v3
/// `mi_option_e`, which the sys crate names only in part). `main.rs` sets it to "never".
pub const PURGE_DELAY_OPTION: libmimalloc_sys::mi_option_t = 15;

/// What a worker thread's heap keeps of its freed pages when they are never handed back:
/// 3 M acts of 20 000 patients at `--memory-limit 512M`, peak RSS 429 MB with 2 threads,
/// 762 MB with 8, 986 MB with 16, 1.49 GB with 32 and 2.01 GB with 64 (2026-12-05), about
/// 30 MiB a thread. Handed back at once (`MIMALLOC_PURGE_DELAY=0`), 722 MB with 64 threads;
/// but each reuse is a fresh page the kernel zeroes: 2 threads, 3.7 → 5.2 s.
pub const KEPT_PER_WORKER: u64 = 32 << 20;

/// Whether `workers` threads keeping their freed pages would hold more than the memory limit
/// allows beside the partitions: more than half the limit, or than 128 MiB for a small one (the
/// few threads of a small machine stay as fast as they were; QA, on a 1 GiB container where
/// the default limit is 512 MiB: 16 threads peaked at 895 MB, 32 were killed for memory).
pub fn should_hand_back_freed_pages(workers: usize, memory: u64) -> bool {
    workers as u64 * KEPT_PER_WORKER > (memory / 2).max(128 << 20)
}

/// Has the allocator hand freed pages back to the system at once, unless
/// `MIMALLOC_PURGE_DELAY` says otherwise. Whether it did.
pub fn hand_back_freed_pages_now() -> bool {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return false;
    }
    // SAFETY: sets one of mimalloc's options, which it reads when it next frees pages.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY_OPTION, 0) };
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_threads_under_a_small_limit_hand_back_their_freed_pages() {
        const MIB: u64 = 1 << 20;
        // Two or four threads keep them whatever the limit (128 MiB at most).
        assert!(!should_hand_back_freed_pages(2, MIB));
        assert!(!should_hand_back_freed_pages(4, 64 * MIB));
        // QA's 1 GiB container (default limit 512 MiB): 8 threads keep them, 16 do not.
        assert!(!should_hand_back_freed_pages(8, 512 * MIB));
        assert!(should_hand_back_freed_pages(16, 512 * MIB));
        assert!(should_hand_back_freed_pages(64, 512 * MIB));
        // A big box with room: 64 threads keep them under a 4 GiB limit.
        assert!(!should_hand_back_freed_pages(64, 4096 * MIB));
        assert!(should_hand_back_freed_pages(65, 4096 * MIB));
    }

    #[test]
    fn small_runs_turn_huge_pages_off_unless_the_variable_decides() {
        assert!(!keep_huge_pages(HUGE_PAGES_FROM_ACTS - 1, None).unwrap());
        assert!(keep_huge_pages(HUGE_PAGES_FROM_ACTS, None).unwrap());
        assert!(keep_huge_pages(10, Some(OsStr::new("1"))).unwrap());
        assert!(!keep_huge_pages(u64::MAX, Some(OsStr::new("0"))).unwrap());
        let error = keep_huge_pages(10, Some(OsStr::new("yes"))).unwrap_err();
        assert!(
            error.starts_with("RAC_HUGE_PAGES=yes: 0 (off) or 1 (on)"),
            "{error}"
        );
    }
}
