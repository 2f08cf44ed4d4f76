//! The floor under `rac compute`: a bare arrow-rs read of the six columns the rules need from
//! an acts Parquet file, and a write of them back to Parquet (snappy), with nothing in between.
//! `scripts/bench.sh` runs it as the "bare read + write" baseline.
//!
//! ```text
//! cargo build --release --example bare_read_write
//! target/release/examples/bare_read_write ACTS.parquet [OUT.parquet]
//! ```
//!
//! Reads only act_id, patient_id, care_date, category, tariff and quantity (a `ProjectionMask`
//! on the Parquet schema), in batches of [`BATCH_ROWS`] rows on one thread, and writes them with
//! the same settings as rac's own tables (snappy, row groups of 1 Mi rows). Without `OUT` the
//! output goes to a temporary file beside the input, deleted at the end. Prints the rows, the
//! seconds and the rows per second.

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use arrow::record_batch::RecordBatchReader;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// The columns every rule of the benchmark's subset reads.
const COLUMNS: [&str; 6] = [
    "act_id",
    "patient_id",
    "care_date",
    "category",
    "tariff",
    "quantity",
];

/// Rows per decoded batch (arrow-rs reads 1,024 by default; larger batches are cheaper).
const BATCH_ROWS: usize = 8192;

/// Rows per written row group, as in rac's writers.
const ROW_GROUP_ROWS: usize = 1 << 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let input: PathBuf = args
        .next()
        .ok_or("usage: bare_read_write ACTS.parquet [OUT.parquet]")?
        .into();
    let (output, temporary) = match args.next() {
        Some(out) => (PathBuf::from(out), false),
        None => {
            let mut name = input.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".bare-{}.parquet", std::process::id()));
            (input.with_file_name(name), true)
        }
    };

    let started = Instant::now();
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&input)?)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), COLUMNS);
    let builder = builder.with_projection(mask).with_batch_size(BATCH_ROWS);
    let reader = builder.build()?;
    // `ProjectionMask::columns` skips unknown names silently: check that all six are there.
    let schema = reader.schema();
    for column in COLUMNS {
        if schema.field_with_name(column).is_err() {
            return Err(format!("{}: no column {column}", input.display()).into());
        }
    }

    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = ArrowWriter::try_new(File::create(&output)?, schema, Some(props))?;
    let mut rows = 0usize;
    for batch in reader {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.close()?;
    let secs = started.elapsed().as_secs_f64();
    if temporary {
        std::fs::remove_file(&output)?;
    }

    println!(
        "bare read + write: {rows} rows, {} columns, {secs:.3} s, {:.0} rows/s",
        COLUMNS.len(),
        rows as f64 / secs
    );
    Ok(())
}
