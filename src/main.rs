//! The `rac` binary: parses the command line, runs it, maps failures to SPEC §1 exit codes.

use clap::Parser;
use rac::cli::Failure;

/// Millions of small strings (ids) are allocated and freed per run: mimalloc does that
/// markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option number (its v3 `mi_option_e`, which the sys crate names only in part).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// A run frees each partition's rows and allocates the next one's. By default mimalloc hands
/// freed pages back to the OS after a second, and the kernel zeroes them again when they are
/// reused: a tenth of a 10 M-act run's CPU was in the kernel, mostly clearing pages (6 %).
/// Keeping them lowers the system time (10 M acts, 2 cores: 3.2 s → 1.7 s with 2 MiB pages,
/// peak RSS about 50 MiB higher since a thread's freed pages are kept for that thread).
/// `MIMALLOC_PURGE_DELAY` in the environment still overrides it.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain setter of the allocator's global options, called before any other
        // thread starts.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// `RAC_HUGE_PAGES=1` keeps the process's transparent huge pages (THP).
const HUGE_PAGES_VARIABLE: &str = "RAC_HUGE_PAGES";

/// Turns transparent huge pages off for this process (Linux), unless `RAC_HUGE_PAGES=1`.
///
/// Every run touches a few hundred MiB of fresh memory. In a virtual machine a 2 MiB page is
/// often memory the host took back, and the kernel's zeroing of it then waits on the host:
/// on this 2-core KVM guest (2026-12-03, 10 M acts, four alternated pairs against the binary
/// before) the system time was 5.0–5.8 s with huge pages and 1.0–1.4 s without, the wall time
/// 15.6–16.7 s against 13.0–13.4 s. The user time was 0.6–1.4 s higher without (more TLB
/// misses): what a machine whose huge pages come cheap may win back with the variable.
fn tune_pages(keep_huge_pages: bool) {
    #[cfg(target_os = "linux")]
    if !keep_huge_pages {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only this process's
        // flag; a kernel without it returns an error, and the run goes on with huge pages.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = keep_huge_pages;
}

fn main() {
    // First: the threads started later leave the stopping signals to its thread.
    rac::interrupt::install();
    tune_allocator();
    tune_pages(std::env::var_os(HUGE_PAGES_VARIABLE).is_some_and(|v| v == "1"));
    let cli = match rac::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => refuse_arguments(error),
    };
    let code = match rac::cli::run(cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("{}", failure.line());
            failure.code
        }
    };
    std::process::exit(code);
}

/// Ends the process on arguments clap refused (exit 2), or after the help or version it
/// printed (exit 0). A refusal is reported as a JSON log line when the arguments ask for JSON
/// logs, like any other failure of such a run: a log collector keeps the reason.
fn refuse_arguments(error: clap::Error) -> ! {
    if error.use_stderr() && rac::cli::asks_for_json_logs(std::env::args_os().skip(1)) {
        let rendered = error.render().to_string();
        let message = rendered.trim().trim_start_matches("error: ");
        let failure = Failure::usage(message).logged_as_json(true);
        eprintln!("{}", failure.line());
        std::process::exit(failure.code);
    }
    error.exit()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::tune_pages;

    /// The kernel's view of the flag, from `/proc/self/status` (`THP_enabled: 0` once off).
    fn huge_pages_enabled() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("THP_enabled:"))
            .expect("THP_enabled in /proc/self/status");
        line.split_whitespace().nth(1) == Some("1")
    }

    #[test]
    fn huge_pages_are_turned_off_unless_kept() {
        // One test, in this order: the flag is the whole process's. It is turned on first,
        // whatever the test runner inherited.
        // SAFETY: as in `tune_pages`.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) },
            0
        );
        assert!(huge_pages_enabled());
        tune_pages(true);
        assert!(huge_pages_enabled(), "RAC_HUGE_PAGES=1 keeps them");
        tune_pages(false);
        assert!(!huge_pages_enabled());
    }
}
