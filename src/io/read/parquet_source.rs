//! Parquet input: the schema is checked once (column types per [`Kind`]), then record batches
//! are read (only the table's columns, one row group after the other, strings stored with a
//! dictionary as dictionaries), each column brought to one of a few canonical Arrow types, and
//! the rows converted in parallel.
//!
//! Accepted Arrow types per kind (a `Dictionary` of an accepted type and an all-null `Null`
//! column are accepted everywhere):
//!
//! | kind | types |
//! |---|---|
//! | text, ids | `Utf8`, `LargeUtf8`, `Utf8View`, integers |
//! | codes (enums) | `Utf8`, `LargeUtf8`, `Utf8View` |
//! | dates | `Date32`, `Date64`, `Timestamp` without time zone, strings (`YYYY-MM-DD`) |
//! | amounts, decimals | `Decimal32/64/128`, `Float32/64`, integers (whole euros), strings |
//! | integers | integers, `Float32/64` holding whole numbers, strings |
//! | booleans | `Boolean`, integers `0/1`, strings |
//!
//! Float `NaN` is read as null (pandas' missing value).

use super::records::{ColumnSpec, Kind, Row, Table};
use super::values::Cell;
use super::{Chunk, ChunkSize, Converted, ReadError, ReadOptions, convert_row};
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Date64Array, Decimal128Array,
    DictionaryArray, Float64Array, Int64Array, StringArray,
};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Field, Float64Type, Int32Type, Int64Type,
    Schema, SchemaRef,
};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use rayon::prelude::*;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

/// Milliseconds in a day (`Date64`).
const MS_PER_DAY: i64 = 86_400_000;

/// An open Parquet file.
pub struct ParquetSource {
    batches: Batches,
    /// For each column of the table, then each carried column, its index in the (projected)
    /// record batches.
    columns: Vec<Option<usize>>,
    /// The carried columns' names, for error messages.
    carried: Vec<String>,
    /// The file's top-level column names, in file order.
    names: Vec<String>,
    /// Data rows converted so far (the batch decoded ahead is not counted).
    row: u64,
    done: bool,
    /// The batch after the one being converted, decoded meanwhile ([`Self::next_chunk`]).
    decoded: Option<Result<Option<RecordBatch>, ReadError>>,
}

/// One column of a batch, in canonical form.
enum Col {
    /// Not in the file, or all null.
    Null,
    Str(StringArray),
    /// Strings as the file stores them when it can: an index into the distinct values (see
    /// [`dictionary_hints`]).
    Dict(DictionaryArray<Int32Type>, StringArray),
    Int(Int64Array),
    Float(Float64Array),
    Decimal(Decimal128Array, i8),
    Date32(Date32Array),
    Date64(Date64Array),
    Bool(BooleanArray),
    /// Bytes that should be text (a carried binary column): checked as UTF-8 where read.
    Bytes(BinaryArray),
}

/// A string cell: the empty string reads as null, as in CSV.
fn text_cell(text: &str) -> Cell<'_> {
    if text.is_empty() {
        Cell::Null
    } else {
        Cell::Str(text)
    }
}

/// Bytes to be read as text (their encoding checked where they are converted); empty reads as
/// null, as in CSV.
fn bytes_cell(bytes: &[u8]) -> Cell<'_> {
    if bytes.is_empty() {
        Cell::Null
    } else {
        Cell::Text(bytes)
    }
}

impl Col {
    /// Appends the cells of `rows` to `out`: the column's type is matched once, and each
    /// arm's loop is [`Col::cell`] inlined for that type.
    fn cells_into<'c>(&'c self, rows: std::ops::Range<usize>, out: &mut Vec<Cell<'c>>) {
        macro_rules! per_type {
            ($($pattern:pat),*) => {
                match self {
                    $($pattern => out.extend(rows.map(|i| self.cell(i))),)*
                }
            };
        }
        per_type!(
            Col::Null,
            Col::Str(_),
            Col::Dict(..),
            Col::Int(_),
            Col::Float(_),
            Col::Decimal(..),
            Col::Date32(_),
            Col::Date64(_),
            Col::Bool(_),
            Col::Bytes(_)
        )
    }

    #[inline(always)]
    fn cell(&self, i: usize) -> Cell<'_> {
        macro_rules! typed {
            ($array:expr, $cell:expr) => {
                if $array.is_null(i) { Cell::Null } else { $cell }
            };
        }
        match self {
            Col::Null => Cell::Null,
            Col::Str(a) => typed!(a, text_cell(a.value(i))),
            Col::Dict(keys, values) => typed!(keys, {
                let key = keys.keys().value(i) as usize;
                if values.is_null(key) {
                    Cell::Null
                } else {
                    text_cell(values.value(key))
                }
            }),
            Col::Int(a) => typed!(a, Cell::Int(a.value(i))),
            Col::Float(a) => typed!(a, {
                let v = a.value(i);
                if v.is_nan() {
                    Cell::Null
                } else {
                    Cell::Float(v)
                }
            }),
            Col::Decimal(a, scale) => typed!(a, Cell::Decimal(a.value(i), *scale)),
            Col::Date32(a) => typed!(a, Cell::Days(i64::from(a.value(i)))),
            Col::Date64(a) => typed!(a, Cell::Days(a.value(i).div_euclid(MS_PER_DAY))),
            Col::Bool(a) => typed!(a, Cell::Bool(a.value(i))),
            Col::Bytes(a) => typed!(a, bytes_cell(a.value(i))),
        }
    }
}

/// Rows converted together: their cells are gathered a column at a time into a small table
/// ([`CellBlock`], 256 rows of 20-odd cells: 160 KiB, in the core's cache) before the rows are
/// read from it. Reading the batch's columns a row at a time walked some forty arrays at once
/// (offsets, values, null bitmaps, dictionary keys), each read a cache miss (`perf`: the cell
/// reads were a third of the reading's CPU). `cargo bench --bench read`, 256 Ki acts from
/// Parquet on 2 cores, four alternated runs each: 120–145 ms a row at a time, 108–111 ms by
/// blocks.
const BLOCK_ROWS: usize = 256;

/// The cells of up to [`BLOCK_ROWS`] consecutive rows of a batch, column after column.
#[derive(Default)]
struct CellBlock<'a> {
    /// The block's first row in the batch.
    start: usize,
    rows: usize,
    cells: Vec<Cell<'a>>,
}

impl<'a> CellBlock<'a> {
    /// Row `i` of the batch, the block refilled first (from `cols`, up to `end`) if it does
    /// not hold the row.
    fn row(&mut self, cols: &'a [Col], i: usize, end: usize) -> BlockRow<'_, 'a> {
        if !(self.start..self.start + self.rows).contains(&i) {
            let rows = BLOCK_ROWS.min(end - i);
            self.cells.clear();
            for col in cols {
                col.cells_into(i..i + rows, &mut self.cells);
            }
            (self.start, self.rows) = (i, rows);
        }
        BlockRow {
            block: self,
            i: i - self.start,
        }
    }
}

/// Row `i` of a [`CellBlock`].
struct BlockRow<'b, 'a> {
    block: &'b CellBlock<'a>,
    i: usize,
}

impl Row for BlockRow<'_, '_> {
    fn cell(&self, slot: usize) -> Cell<'_> {
        self.block.cells[slot * self.block.rows + self.i]
    }
}

fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Whether a column of type `dt` can hold a value of `kind`.
fn accepts(kind: Kind, dt: &DataType) -> bool {
    use DataType as D;
    if let D::Dictionary(_, values) = dt {
        return accepts(kind, values);
    }
    if matches!(dt, D::Null) || is_string(dt) {
        return true;
    }
    let int = dt.is_integer();
    let float = matches!(dt, D::Float16 | D::Float32 | D::Float64);
    match kind {
        Kind::Text => int,
        Kind::Code => false,
        Kind::Date => matches!(dt, D::Date32 | D::Date64 | D::Timestamp(_, None)),
        Kind::Amount | Kind::Decimal => {
            int || float || matches!(dt, D::Decimal32(..) | D::Decimal64(..) | D::Decimal128(..))
        }
        Kind::Int => int || float,
        Kind::Bool => int || matches!(dt, D::Boolean),
    }
}

/// The types accepted for `kind`, for error messages.
fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "a string or an integer",
        Kind::Code => "a string",
        Kind::Date => {
            "Date32, Date64, a timestamp without a time zone (its day is the date) or a string"
        }
        Kind::Amount | Kind::Decimal => "Decimal128, Float64, an integer or a string",
        Kind::Int => "an integer",
        Kind::Bool => "Boolean",
    }
}

/// Brings an array (of an accepted type) to its canonical form.
fn canonical(array: &ArrayRef) -> Result<Col, arrow::error::ArrowError> {
    use DataType as D;
    let dt = array.data_type().clone();
    Ok(match &dt {
        D::Null => Col::Null,
        D::Dictionary(key, values) if **key == D::Int32 && **values == D::Utf8 => {
            let dict = array.as_dictionary::<Int32Type>().clone();
            let values = dict.values().as_string::<i32>().clone();
            Col::Dict(dict, values)
        }
        D::Dictionary(_, values) => return canonical(&cast(array, values)?),
        D::Utf8 => Col::Str(array.as_string::<i32>().clone()),
        D::LargeUtf8 | D::Utf8View => Col::Str(cast(array, &D::Utf8)?.as_string::<i32>().clone()),
        D::Int64 => Col::Int(array.as_primitive::<Int64Type>().clone()),
        _ if dt.is_integer() => {
            Col::Int(cast(array, &D::Int64)?.as_primitive::<Int64Type>().clone())
        }
        D::Float64 => Col::Float(array.as_primitive::<Float64Type>().clone()),
        D::Float16 | D::Float32 => Col::Float(
            cast(array, &D::Float64)?
                .as_primitive::<Float64Type>()
                .clone(),
        ),
        D::Decimal128(_, scale) => {
            Col::Decimal(array.as_primitive::<Decimal128Type>().clone(), *scale)
        }
        D::Decimal32(_, scale) | D::Decimal64(_, scale) => Col::Decimal(
            cast(array, &D::Decimal128(38, *scale))?
                .as_primitive::<Decimal128Type>()
                .clone(),
            *scale,
        ),
        D::Date32 => Col::Date32(array.as_primitive::<Date32Type>().clone()),
        D::Date64 => Col::Date64(array.as_primitive::<Date64Type>().clone()),
        D::Timestamp(_, None) => Col::Date32(
            cast(array, &D::Date32)?
                .as_primitive::<Date32Type>()
                .clone(),
        ),
        D::Boolean => Col::Bool(array.as_boolean().clone()),
        other => {
            return Err(arrow::error::ArrowError::CastError(format!(
                "unsupported type {other}"
            )));
        }
    })
}

/// A carried column (`--keep-columns`) as text: strings as they are, bytes as text to check
/// (not UTF-8: the row is rejected), any other type written out as Arrow prints it (`26.50`,
/// `2024-03-01`, `true`, `{a: 1}`), a timestamp with a time zone as its UTC instant
/// (`2024-03-01T08:00:00Z`).
fn carried_col(array: &ArrayRef) -> Result<Col, arrow::error::ArrowError> {
    use DataType as D;
    let dt = array.data_type();
    Ok(match dt {
        D::Null => Col::Null,
        _ if is_string(dt) => canonical(array)?,
        D::Dictionary(_, values) if is_string(values) => canonical(array)?,
        _ if is_binary(dt) => Col::Bytes(cast(array, &D::Binary)?.as_binary::<i32>().clone()),
        D::Dictionary(_, values) if is_binary(values) => {
            Col::Bytes(cast(array, &D::Binary)?.as_binary::<i32>().clone())
        }
        D::Timestamp(unit, Some(_)) => {
            // The instants, in UTC: a named zone needs a time-zone database to print.
            let utc = D::Timestamp(*unit, Some("+00:00".into()));
            let data = array.to_data().into_builder().data_type(utc).build()?;
            let text = cast(&arrow::array::make_array(data), &D::Utf8)?;
            Col::Str(text.as_string::<i32>().clone())
        }
        _ => match cast(array, &D::Utf8) {
            Ok(text) => Col::Str(text.as_string::<i32>().clone()),
            Err(_) => Col::Str(formatted(array.as_ref())?),
        },
    })
}

/// Each value of `array` as Arrow prints it (nulls stay null).
fn formatted(array: &dyn Array) -> Result<StringArray, arrow::error::ArrowError> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
    Ok((0..array.len())
        .map(|i| (!array.is_null(i)).then(|| formatter.value(i).to_string()))
        .collect())
}

fn is_binary(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    )
}

/// Runs `f`, turning a panic of the Parquet decoder (on a hostile file) into an error.
fn guarded<T>(name: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, ReadError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(ReadError::Parquet {
            file: name.to_string(),
            message,
        }),
        Err(panic) => Err(ReadError::Parquet {
            file: name.to_string(),
            message: panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the decoder failed".to_string()),
        }),
    }
}

/// Checks the file's schema against the table's columns: for each, its index in the file.
fn match_columns(
    name: &str,
    schema: &Schema,
    columns: &[ColumnSpec],
) -> Result<Vec<Option<usize>>, ReadError> {
    let found: Vec<Option<usize>> = columns
        .iter()
        .map(|spec| schema.fields().iter().position(|f| f.name() == spec.name))
        .collect();
    super::check_required(name, columns, &found)?;
    super::check_unique(
        name,
        columns,
        schema.fields().iter().map(|f| f.name().as_bytes()),
    )?;
    for (spec, index) in columns.iter().zip(&found) {
        if let Some(index) = *index {
            let dt = schema.field(index).data_type();
            if !accepts(spec.kind, dt) {
                return Err(ReadError::UnsupportedType {
                    file: name.to_string(),
                    column: spec.name.to_string(),
                    data_type: dt.to_string(),
                    expected: expected(spec.kind),
                });
            }
        }
    }
    Ok(found)
}

/// The file's schema with the string columns of `wanted` (top-level field indices) that have a
/// dictionary in every row group read as `Dictionary(Int32, Utf8)`: the decoder then hands over
/// each value's index into the distinct values instead of copying the value itself. On the
/// generated acts (ten of the eighteen columns are such strings), with [`Batches`]: 2.2 % fewer
/// instructions for a whole run of 1 M acts (callgrind, `--threads 1`). `None` when no column
/// qualifies, or for a nested schema.
fn dictionary_hints(metadata: &ArrowReaderMetadata, wanted: &[usize]) -> Option<SchemaRef> {
    let schema = metadata.schema();
    let row_groups = metadata.metadata().row_groups();
    // Flat: field i is leaf column i.
    if metadata.parquet_schema().num_columns() != schema.fields().len() || row_groups.is_empty() {
        return None;
    }
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut hinted = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let stored_as_dictionary = wanted.binary_search(&i).is_ok()
                && *field.data_type() == DataType::Utf8
                && row_groups
                    .iter()
                    .all(|group| group.column(i).dictionary_page_offset().is_some());
            if stored_as_dictionary {
                hinted = true;
                field.as_ref().clone().with_data_type(dictionary.clone())
            } else {
                field.as_ref().clone()
            }
        })
        .collect();
    hinted.then(|| Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())))
}

impl ParquetSource {
    /// Opens `path`, checks its schema, and prepares batches of the rows `size` allows; the
    /// cells of the `carried` columns (where the file has them) follow the table's own.
    pub fn open(
        path: &Path,
        name: &str,
        columns: &[ColumnSpec],
        carried: &[String],
        size: ChunkSize,
    ) -> Result<ParquetSource, ReadError> {
        let file = File::open(path).map_err(|source| ReadError::Io {
            file: name.to_string(),
            source,
        })?;
        crate::io::unchanged::note(path, &file).map_err(|message| ReadError::Changed {
            file: name.to_string(),
            message,
        })?;
        let metadata = guarded(name, || {
            ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| e.to_string())
        })?;
        let mut found = match_columns(name, metadata.schema(), columns)?;
        let fields = metadata.schema().fields();
        found.extend(
            carried
                .iter()
                .map(|carried| fields.iter().position(|f| f.name() == carried)),
        );
        let names = fields.iter().map(|f| f.name().clone()).collect();
        // Read only the table's columns (top-level fields map to root columns one to one).
        let mut wanted: Vec<usize> = found.iter().flatten().copied().collect();
        wanted.sort_unstable();
        wanted.dedup();
        // Strings stored with a dictionary are read as one; should the file refuse that
        // schema, as they come.
        let metadata = dictionary_hints(&metadata, &wanted)
            .and_then(|schema| {
                let options = ArrowReaderOptions::new().with_schema(schema);
                guarded(name, || {
                    ArrowReaderMetadata::try_new(metadata.metadata().clone(), options)
                        .map_err(|e| e.to_string())
                })
                .ok()
            })
            .unwrap_or(metadata);
        let roots = metadata.parquet_schema().root_schema().get_fields().len();
        let (mask, columns) = if roots == metadata.schema().fields().len() {
            let mask = ProjectionMask::roots(metadata.parquet_schema(), wanted.iter().copied());
            let projected = found
                .iter()
                .map(|index| index.and_then(|i| wanted.binary_search(&i).ok()))
                .collect();
            (Some(mask), projected)
        } else {
            (None, found)
        };
        Ok(ParquetSource {
            batches: Batches {
                file,
                metadata,
                mask,
                size,
                next_group: 0,
                current: None,
            },
            columns,
            carried: carried.to_vec(),
            names,
            row: 0,
            done: false,
            decoded: None,
        })
    }

    /// The file's top-level column names, in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Reads and converts the next record batch; `None` at the end of the file. The batch
    /// after it is decoded on one worker while the others convert this one (decoding is a
    /// third of the reading, and would otherwise leave the pool idle; with one worker the two
    /// run one after the other), and is returned by the next call, error included.
    pub fn next_chunk<T: Table>(
        &mut self,
        file: usize,
        name: &str,
        opts: &ReadOptions,
    ) -> Result<Option<Chunk<T>>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let decoded = match self.decoded.take() {
            Some(decoded) => decoded,
            None => self.batches.next(name),
        };
        let batch = match decoded {
            Ok(Some(batch)) => batch,
            Ok(None) => {
                self.done = true;
                return Ok(None);
            }
            Err(error) => {
                self.done = true;
                return Err(error);
            }
        };
        let mut cols = Vec::with_capacity(self.columns.len());
        let names = T::COLUMNS
            .iter()
            .map(|spec| spec.name)
            .chain(self.carried.iter().map(String::as_str));
        for (slot, (column, index)) in names.zip(&self.columns).enumerate() {
            let col = match index {
                Some(i) if *i < batch.num_columns() && slot < T::COLUMNS.len() => {
                    canonical(batch.column(*i))
                }
                Some(i) if *i < batch.num_columns() => carried_col(batch.column(*i)),
                Some(_) => Err(arrow::error::ArrowError::SchemaError(
                    "column missing from a record batch".to_string(),
                )),
                None => Ok(Col::Null),
            };
            cols.push(col.map_err(|e| ReadError::Parquet {
                file: name.to_string(),
                message: format!("column `{column}`: {e}"),
            })?);
        }
        let first = self.row + 1;
        let rows = batch.num_rows();
        self.row += rows as u64;
        let cols = &cols[..];
        let batches = &mut self.batches;
        let (results, next) = rayon::join(
            || {
                (0..rows)
                    .into_par_iter()
                    .with_min_len(1024)
                    .map_init(CellBlock::default, |block, i| {
                        let row = block.row(cols, i, rows);
                        convert_row(&row, opts, file, name, first + i as u64)
                    })
                    .collect::<Vec<Converted<T>>>()
            },
            || batches.next(name),
        );
        self.decoded = Some(next);
        Ok(Some(Chunk::from_results(file, results)))
    }
}

/// The record batches of a file, one row group after the other: a batch never spans two row
/// groups. A string column read as a dictionary then keeps its row group's dictionary: a batch
/// across two row groups has its strings copied out of both dictionaries and hashed into a
/// new one (on the generated acts, whose row groups are not a multiple of the batch size, one
/// batch in four).
struct Batches {
    file: File,
    metadata: ArrowReaderMetadata,
    /// The table's columns (`None`: every column, for a nested schema).
    mask: Option<ProjectionMask>,
    size: ChunkSize,
    next_group: usize,
    current: Option<ParquetRecordBatchReader>,
}

impl Batches {
    /// Rows per batch in row group `group`: `size.rows`, or fewer where that many rows take
    /// more than `size.bytes` uncompressed in the columns read.
    fn rows_per_batch(&self, group: usize) -> usize {
        let row_group = self.metadata.metadata().row_group(group);
        let bytes: u64 = (row_group.columns().iter().enumerate())
            .filter(|(leaf, _)| self.mask.as_ref().is_none_or(|m| m.leaf_included(*leaf)))
            // Strings stored with a dictionary take their decoded size where the writer
            // recorded it.
            .map(|(_, column)| {
                let decoded = column.unencoded_byte_array_data_bytes().unwrap_or(0);
                column.uncompressed_size().max(decoded).max(0) as u64
            })
            .sum();
        let row_bytes = bytes / (row_group.num_rows().max(1) as u64);
        let fit = (self.size.bytes as u64 / row_bytes.max(1)).max(1);
        self.size
            .rows
            .min(fit.try_into().unwrap_or(usize::MAX))
            .max(1)
    }

    /// The next record batch; `None` at the end of the file.
    fn next(&mut self, name: &str) -> Result<Option<RecordBatch>, ReadError> {
        loop {
            if let Some(reader) = &mut self.current {
                let batch = guarded(name, || {
                    reader.next().transpose().map_err(|e| e.to_string())
                })?;
                if batch.is_some() {
                    return Ok(batch);
                }
                self.current = None;
            }
            let group = self.next_group;
            if group >= self.metadata.metadata().num_row_groups() {
                return Ok(None);
            }
            self.next_group += 1;
            let file = self.file.try_clone().map_err(|source| ReadError::Io {
                file: name.to_string(),
                source,
            })?;
            let mut builder =
                ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                    .with_row_groups(vec![group])
                    .with_batch_size(self.rows_per_batch(group));
            if let Some(mask) = &self.mask {
                builder = builder.with_projection(mask.clone());
            }
            self.current = Some(guarded(name, || {
                builder.build().map_err(|e| e.to_string())
            })?);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn accepted_types() {
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        assert!(accepts(Kind::Text, &dict));
        assert!(accepts(Kind::Code, &dict));
        assert!(accepts(Kind::Text, &DataType::Int64));
        assert!(!accepts(Kind::Text, &DataType::Float64));
        assert!(!accepts(Kind::Code, &DataType::Int64));
        assert!(accepts(Kind::Date, &DataType::Date32));
        assert!(accepts(
            Kind::Date,
            &DataType::Timestamp(TimeUnit::Microsecond, None)
        ));
        assert!(!accepts(
            Kind::Date,
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        ));
        assert!(!accepts(Kind::Date, &DataType::Boolean));
        assert!(accepts(Kind::Amount, &DataType::Decimal128(10, 2)));
        assert!(accepts(Kind::Amount, &DataType::Float64));
        assert!(!accepts(Kind::Amount, &DataType::Boolean));
        assert!(accepts(Kind::Bool, &DataType::Boolean));
        assert!(accepts(Kind::Int, &DataType::Null));
    }

    #[test]
    fn canonical_cells() {
        let dict: ArrayRef =
            std::sync::Arc::new(arrow::array::DictionaryArray::<Int32Type>::from_iter([
                Some("a"),
                None,
                Some(""),
            ]));
        let col = canonical(&dict).unwrap();
        assert_eq!(col.cell(0), Cell::Str("a"));
        assert_eq!(col.cell(1), Cell::Null);
        assert_eq!(col.cell(2), Cell::Null);
        // A null among the distinct values, not in the keys.
        let dict: ArrayRef = Arc::new(
            DictionaryArray::<Int32Type>::try_new(
                arrow::array::Int32Array::from(vec![1, 0]),
                Arc::new(StringArray::from(vec![None, Some("b")])),
            )
            .unwrap(),
        );
        let col = canonical(&dict).unwrap();
        assert_eq!(col.cell(0), Cell::Str("b"));
        assert_eq!(col.cell(1), Cell::Null);
        let dates: ArrayRef = std::sync::Arc::new(Date64Array::from(vec![-1, MS_PER_DAY]));
        let col = canonical(&dates).unwrap();
        assert_eq!(col.cell(0), Cell::Days(-1));
        assert_eq!(col.cell(1), Cell::Days(1));
        let floats: ArrayRef = std::sync::Arc::new(Float64Array::from(vec![f64::NAN, 1.5]));
        let col = canonical(&floats).unwrap();
        assert_eq!(col.cell(0), Cell::Null);
        assert_eq!(col.cell(1), Cell::Float(1.5));
    }

    /// A block holds, for each row and column, the cell [`Col::cell`] reads, whatever row
    /// the block starts on and wherever the batch ends (the last block shorter).
    #[test]
    fn a_block_holds_the_cells_of_its_rows() {
        let n = BLOCK_ROWS * 2 + 37;
        let present = |i: usize, k: usize| !i.is_multiple_of(k);
        let texts: Vec<String> = (0..n).map(|i| format!("id{i}")).collect();
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| present(i, 7).then(|| texts[i].as_str())),
            )),
            Arc::new(DictionaryArray::<Int32Type>::from_iter(
                (0..n).map(|i| present(i, 5).then(|| ["a", "", "c"][i % 3])),
            )),
            Arc::new(Int64Array::from_iter(
                (0..n).map(|i| present(i, 3).then_some(i as i64)),
            )),
            Arc::new(Float64Array::from_iter(
                (0..n).map(|i| present(i, 4).then_some(i as f64 / 2.0)),
            )),
            Arc::new(
                Decimal128Array::from_iter((0..n).map(|i| present(i, 6).then_some(i as i128)))
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from_iter(
                (0..n).map(|i| present(i, 2).then_some(i as i32)),
            )),
            Arc::new(BooleanArray::from_iter(
                (0..n).map(|i| present(i, 9).then_some(i % 2 == 0)),
            )),
        ];
        let mut cols: Vec<Col> = arrays.iter().map(|a| canonical(a).unwrap()).collect();
        cols.push(Col::Null);
        for first in [0, 1, BLOCK_ROWS - 1, n - 3] {
            let mut block = CellBlock::default();
            for i in first..n {
                let row = block.row(&cols, i, n);
                for (slot, col) in cols.iter().enumerate() {
                    assert_eq!(row.cell(slot), col.cell(i), "row {i}, column {slot}");
                }
            }
        }
        // Not a sequence of defaults: the cells differ from row to row.
        assert_eq!(cols[0].cell(8), Cell::Str("id8"));
        assert_eq!(cols[4].cell(7), Cell::Decimal(7, 2));
    }

    /// Writes `batch` to `path` as Parquet with `props`.
    fn write_file(
        path: &Path,
        batch: &RecordBatch,
        props: parquet::file::properties::WriterProperties,
    ) {
        let file = File::create(path).unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
        writer.write(batch).unwrap();
        writer.close().unwrap();
    }

    #[test]
    fn strings_stored_with_a_dictionary_are_read_as_one() {
        use parquet::file::properties::WriterProperties;
        use parquet::schema::types::ColumnPath;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let strings = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
        let batch = RecordBatch::try_from_iter([
            ("with", strings(vec![Some("a"), None, Some(""), Some("a")])),
            (
                "without",
                strings(vec![Some("x"), Some("y"), None, Some("x")]),
            ),
            (
                "number",
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef,
            ),
        ])
        .unwrap();
        let props = WriterProperties::builder()
            .set_column_dictionary_enabled(ColumnPath::from("without"), false)
            .build();
        write_file(&path, &batch, props);

        let metadata =
            ArrowReaderMetadata::load(&File::open(&path).unwrap(), ArrowReaderOptions::new())
                .unwrap();
        let hinted = dictionary_hints(&metadata, &[0, 1, 2]).unwrap();
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let types: Vec<&DataType> = hinted.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(types, [&dictionary, &DataType::Utf8, &DataType::Int64]);
        // Only the columns read.
        assert!(dictionary_hints(&metadata, &[1, 2]).is_none());

        // Read through the hint, the cells are the file's.
        let options = ArrowReaderOptions::new().with_schema(hinted);
        let metadata = ArrowReaderMetadata::try_new(metadata.metadata().clone(), options).unwrap();
        let mut reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
            File::open(&path).unwrap(),
            metadata,
        )
        .build()
        .unwrap();
        let read = reader.next().unwrap().unwrap();
        let col = canonical(read.column(0)).unwrap();
        assert!(matches!(col, Col::Dict(..)));
        let cells: Vec<Cell> = (0..4).map(|i| col.cell(i)).collect();
        assert_eq!(
            cells,
            [Cell::Str("a"), Cell::Null, Cell::Null, Cell::Str("a")]
        );
        let col = canonical(read.column(1)).unwrap();
        assert!(matches!(col, Col::Str(..)));
        assert_eq!(col.cell(1), Cell::Str("y"));
    }

    /// Writes acts of ids `ids`, all of patient `patient`, to `path` with `props`.
    fn write_act_keys(
        path: &Path,
        ids: &[String],
        patient: &str,
        props: parquet::file::properties::WriterProperties,
    ) {
        let batch = RecordBatch::try_from_iter([
            (
                "act_id",
                Arc::new(StringArray::from(ids.to_vec())) as ArrayRef,
            ),
            (
                "patient_id",
                Arc::new(StringArray::from(vec![patient; ids.len()])) as ArrayRef,
            ),
        ])
        .unwrap();
        write_file(path, &batch, props);
    }

    /// Reads the act keys of `path` in chunks of `size`: the chunks' sizes, and each act's
    /// row and id.
    fn read_act_keys(path: &Path, size: ChunkSize) -> (Vec<usize>, Vec<(u64, String)>) {
        use super::super::records::ActKey;
        let name = "acts.parquet";
        let mut source = ParquetSource::open(path, name, ActKey::COLUMNS, &[], size).unwrap();
        let (mut sizes, mut read) = (Vec::new(), Vec::new());
        while let Some(chunk) = source
            .next_chunk::<ActKey>(0, name, &ReadOptions::default())
            .unwrap()
        {
            sizes.push(chunk.rows.len());
            read.extend(
                chunk
                    .rows
                    .iter()
                    .map(|r| (r.row, r.value.act_id.to_string())),
            );
        }
        (sizes, read)
    }

    fn size(rows: usize, bytes: usize) -> ChunkSize {
        ChunkSize { rows, bytes }
    }

    #[test]
    fn batches_stop_at_the_end_of_each_row_group() {
        use parquet::file::properties::WriterProperties;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acts.parquet");
        let ids: Vec<String> = (1..=8).map(|i| format!("A{i}")).collect();
        // Row groups of 5 and 3 rows.
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(5))
            .build();
        write_act_keys(&path, &ids, "P", props);
        let expected: Vec<(u64, String)> = (1..=8).zip(ids).collect();
        assert_eq!(
            read_act_keys(&path, size(4, 1 << 20)),
            (vec![4, 1, 3], expected)
        );
    }

    #[test]
    fn wide_rows_make_batches_of_fewer_rows() {
        use parquet::file::properties::WriterProperties;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acts.parquet");
        // Ids of 1 000 characters: a row takes about 1 010 bytes uncompressed.
        let ids: Vec<String> = (0..10)
            .map(|i| format!("A{i}{}", "x".repeat(998)))
            .collect();
        let props = WriterProperties::builder()
            .set_dictionary_enabled(false)
            .build();
        write_act_keys(&path, &ids, "P", props);
        let expected: Vec<(u64, String)> = (1..=10).zip(ids).collect();
        let sizes = |size: ChunkSize| {
            let (sizes, read) = read_act_keys(&path, size);
            assert_eq!(read, expected);
            sizes
        };
        // 2 500 bytes hold two such rows; the row count still applies; a byte bound under
        // one row still reads a row at a time.
        assert_eq!(sizes(size(64, 2_500)), [2; 5]);
        assert_eq!(sizes(size(64, 1 << 20)), [10]);
        assert_eq!(sizes(size(4, 1 << 20)), [4, 4, 2]);
        assert_eq!(sizes(size(64, 1)), [1; 10]);
    }

    #[test]
    fn strings_stored_in_a_dictionary_are_sized_as_decoded() {
        use parquet::file::properties::WriterProperties;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acts.parquet");
        // One patient id of 1 000 characters, stored once in a dictionary: a few bytes a row
        // encoded, 1 000 decoded (as the file's size statistics record).
        let ids: Vec<String> = (0..10).map(|i| format!("A{i}")).collect();
        let patient = format!("P{}", "x".repeat(999));
        write_act_keys(&path, &ids, &patient, WriterProperties::builder().build());
        let (sizes, read) = read_act_keys(&path, size(64, 2_500));
        assert_eq!(sizes, [2; 5]);
        assert_eq!(read.len(), 10);
    }
}
