//! The `rac` binary: parses the command line, runs it, maps failures to SPEC §1 exit codes.

use clap::Parser;

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
