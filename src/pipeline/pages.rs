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

#[cfg(test)]
mod tests {
    use super::*;

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
