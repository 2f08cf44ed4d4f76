//! The `rac` binary: parses the command line, runs it, maps failures to SPEC §1 exit codes.

use clap::Parser;

/// Millions of small strings (ids) are allocated and freed per run: mimalloc does that
/// markedly faster than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
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
