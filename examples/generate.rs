//! Times `rac::generate::generate` and reports rows/s, file sizes and peak memory.
//!
//! ```text
//! cargo run --release --example generate -- [ACTS] [PATIENTS] [parquet|csv] [OUT_DIR]
//! cargo run --release --example generate -- 10000000 500000 parquet /tmp/rac-gen
//! ```
//!
//! Defaults: 10,000,000 acts, 500,000 patients, Parquet, a temporary folder (deleted after).

use std::time::Instant;

use rac::generate::{GenFormat, GenerateOptions, generate};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let acts: u64 = args.first().map_or(Ok(10_000_000), |a| a.parse())?;
    let patients: u64 = args.get(1).map_or(Ok(500_000), |a| a.parse())?;
    let format = match args.get(2).map(String::as_str) {
        None | Some("parquet") => GenFormat::Parquet,
        Some("csv") => GenFormat::Csv,
        Some(other) => return Err(format!("unknown format {other}").into()),
    };
    let temp = tempfile::tempdir()?;
    let out = args
        .get(3)
        .map_or_else(|| temp.path().to_path_buf(), Into::into);
    let opts = GenerateOptions {
        acts,
        patients,
        format,
        ..GenerateOptions::default()
    };
    let t = Instant::now();
    let stats = generate(&opts, &out)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{acts} acts, {patients} patients, {} rights, {format:?}, {} threads: {secs:.2} s, {:.2} M acts/s",
        stats.rights,
        rayon::current_num_threads(),
        acts as f64 / secs / 1e6
    );
    for f in &stats.files {
        let size = std::fs::metadata(f)?.len() as f64 / (1 << 20) as f64;
        println!("  {} {size:.1} MiB", f.display());
    }
    if let Some(rss) = peak_rss_mib() {
        println!("  peak RSS {rss:.0} MiB");
    }
    Ok(())
}
