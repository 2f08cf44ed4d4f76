//! The `rac` binary: parses the command line, runs it, maps failures to SPEC §1 exit codes.

use clap::Parser;

/// Millions of small strings (ids) are allocated and freed per run: mimalloc does that
/// markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v2).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // A run frees and reallocates its partitions' rows over and over: by default mimalloc
    // hands freed memory back to the OS after 10 ms and the kernel zeroes it again on the
    // next use (a third of the time of a partitioned run, measured with perf). One second
    // keeps it for reuse; the peak resident memory is the same. MIMALLOC_PURGE_DELAY still
    // wins when set.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option of the allocator; any value is valid.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    }
    let cli = rac::cli::Cli::parse();
    let code = match rac::cli::run(cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("rac: {}", failure.message);
            failure.code
        }
    };
    std::process::exit(code);
}
