//! The floor under the writing of `acts.parquet`: what arrow-rs alone takes to encode the
//! table rac writes, with nothing computed. Reads a finished `acts.parquet` (every column)
//! into memory, then encodes it again to Parquet with rac's own settings
//! ([`rac::io::write::parquet_properties`] for the acts table), on one thread, and times that
//! encoding only. `scripts/bench.sh` runs it on rac's output and prints its `floor` line and
//! section.
//!
//! ```text
//! cargo build --release --example output_floor
//! target/release/examples/output_floor OUT/acts.parquet
//! ```
//!
//! The encoded bytes go to a temporary file beside the input, deleted at the end. Prints the
//! rows, the columns, the bytes written and the encoding's seconds. rac encodes the columns
//! of a row group on every core, so on N cores the floor of a run's wall time is about these
//! seconds divided by N, before any reading or computing.

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use arrow::record_batch::{RecordBatch, RecordBatchReader};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rac::io::write::parquet_properties;
use rac::model::Outcome;

/// Rows per decoded batch: rac hands its writer chunks of this many acts.
const BATCH_ROWS: usize = rac::io::write::CHUNK_ROWS;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let input: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: output_floor OUT/acts.parquet")?
        .into();
    let mut name = input.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".floor-{}.parquet", std::process::id()));
    let output = input.with_file_name(name);

    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&input)?)?
        .with_batch_size(BATCH_ROWS)
        .build()?;
    let schema = reader.schema();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>()?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();

    let started = Instant::now();
    let mut writer = ArrowWriter::try_new(
        File::create(&output)?,
        schema.clone(),
        Some(parquet_properties::<Outcome>()),
    )?;
    for batch in &batches {
        writer.write(batch)?;
    }
    writer.close()?;
    let secs = started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&output)?.len();
    std::fs::remove_file(&output)?;

    println!(
        "acts.parquet encode: {rows} rows, {} columns, {bytes} bytes, {secs:.3} s on one thread, {:.0} rows/s",
        schema.fields().len(),
        rows as f64 / secs
    );
    Ok(())
}
