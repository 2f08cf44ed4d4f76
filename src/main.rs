//! The `rac` binary: parses the command line, runs it, maps failures to SPEC §1 exit codes.

use clap::Parser;
use rac::cli::Failure;

/// Millions of small strings (ids) are allocated and freed per run: mimalloc does that
/// markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option numbers (its v3 `mi_option_e`, which the sys crate names only in part).
const MI_OPTION_ALLOW_LARGE_OS_PAGES: libmimalloc_sys::mi_option_t = 6;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = rac::pipeline::PURGE_DELAY_OPTION;

/// A run frees each partition's rows and allocates the next one's. By default mimalloc hands
/// freed pages back to the OS after a second, and the kernel zeroes them again when they are
/// reused: a tenth of a 10 M-act run's CPU was in the kernel, mostly clearing pages (6 %).
/// Keeping them, and allowing 2 MiB pages for the arenas reserved from here on, halves the
/// system time (10 M acts, 2 cores: 3.2 s → 1.7 s, about 1.5 s less wall time, peak RSS about
/// 50 MiB higher since a thread's freed pages are kept for that thread; a run of many threads
/// under a small memory limit hands them back, see `pipeline::should_hand_back_freed_pages`).
/// `MIMALLOC_*` variables still override both.
fn tune_allocator() {
    for (option, value, variable) in [
        (MI_OPTION_PURGE_DELAY, -1, "MIMALLOC_PURGE_DELAY"),
        (
            MI_OPTION_ALLOW_LARGE_OS_PAGES,
            1,
            "MIMALLOC_ALLOW_LARGE_OS_PAGES",
        ),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: plain setters of the allocator's global options, called before any
            // other thread starts.
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
}

fn main() {
    // First: the threads started later leave the stopping signals to its thread.
    rac::interrupt::install();
    tune_allocator();
    let cli = match rac::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => refuse_arguments(error),
    };
    let result = rac::cli::run(cli);
    // Before a failure's reason, which stays the last line.
    rac::interrupt::say_deferred();
    let code = match result {
        Ok(code) => code,
        Err(failure) => {
            rac::cli::write_err(format_args!("{}", failure.line()));
            failure.code
        }
    };
    std::process::exit(code);
}

/// Ends the process on arguments clap refused (exit 2), or after the help or version it
/// printed (exit 0). A refusal is reported like any other failure: its last line
/// `rac: <reason>` after clap's usage and tip, or a JSON log line when the arguments ask for
/// JSON logs (a log collector keeps the reason).
fn refuse_arguments(error: clap::Error) -> ! {
    if error.use_stderr() {
        let rendered = error.render().to_string();
        let message = reason_first(rendered.trim().trim_start_matches("error: "));
        let message = message.as_str();
        let json = rac::cli::asks_for_json_logs(std::env::args_os().skip(1));
        let failure = Failure::usage(message).logged_as_json(json);
        rac::cli::write_err(format_args!("{}", failure.line()));
        std::process::exit(failure.code);
    }
    error.exit()
}

/// Clap's message with the list that completes its first line on that line: "the following
/// required arguments were not provided:" is followed by the arguments, one per indented line,
/// and the reason (the last line on stderr, what a cron mail shows) must name them.
fn reason_first(message: &str) -> String {
    let mut lines = message.lines();
    let Some(first) = lines.next() else {
        return String::new();
    };
    if !first.ends_with(':') {
        return message.to_string();
    }
    let rest: Vec<&str> = lines.collect();
    let listed = rest
        .iter()
        .take_while(|l| l.starts_with("  ") && !l.trim().is_empty())
        .count();
    if listed == 0 {
        return message.to_string();
    }
    let items: Vec<&str> = rest[..listed].iter().map(|l| l.trim()).collect();
    let mut out = format!("{first} {}", items.join(", "));
    for line in &rest[listed..] {
        out.push('\n');
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refusal_names_what_completes_its_first_line() {
        let clap = "the following required arguments were not provided:\n  --acts <ACTS>\n  --out <OUT>\n\nUsage: rac compute --acts <ACTS> --out <OUT>\n\nFor more information, try '--help'.";
        assert_eq!(
            super::reason_first(clap),
            "the following required arguments were not provided: --acts <ACTS>, --out <OUT>\n\nUsage: rac compute --acts <ACTS> --out <OUT>\n\nFor more information, try '--help'."
        );
        let plain = "unexpected argument '-q' found\n\nUsage: rac compute";
        assert_eq!(super::reason_first(plain), plain);
    }
}
