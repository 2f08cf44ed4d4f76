//! CSV and CSV.gz input: header checks, then records read in chunks and converted in
//! parallel.

use super::records::{ColumnSpec, Row, Table};
use super::values::{Cell, RejectReason, truncate};
use super::{Chunk, ChunkSize, ReadError, ReadOptions, Sourced, convert_row};
use crate::model::Reject;
use csv::ByteRecord;
use flate2::read::MultiGzDecoder;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Size of the read buffers.
const BUFFER: usize = 1 << 18;

/// An open CSV file, positioned after its header.
pub struct CsvSource {
    reader: csv::Reader<BufReader<Box<dyn Read + Send>>>,
    /// For each column of the table, then each carried column, its field index in the file.
    fields: Vec<Option<usize>>,
    /// The header's column names, in file order.
    names: Vec<String>,
    /// Number of fields of the header: every record must have as many.
    width: usize,
    delimiter: u8,
    /// Reused record buffers, one per row of a chunk.
    records: Vec<ByteRecord>,
    /// Data rows read so far.
    row: u64,
    done: bool,
}

/// A CSV record seen as a table row.
struct CsvRow<'a> {
    record: &'a ByteRecord,
    fields: &'a [Option<usize>],
}

impl Row for CsvRow<'_> {
    fn cell(&self, slot: usize) -> Cell<'_> {
        match self.fields[slot].and_then(|field| self.record.get(field)) {
            Some(bytes) if !bytes.is_empty() => Cell::Text(bytes),
            _ => Cell::Null,
        }
    }
}

/// The delimiter used by a header line: the most frequent of `,`, `;` and tab (`,` on ties),
/// so that French exports (`;`, usually with a decimal comma) read as they are.
fn sniff_delimiter(head: &[u8]) -> u8 {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    let count = |d: u8| line.iter().filter(|&&b| b == d).count();
    let (commas, semicolons, tabs) = (count(b','), count(b';'), count(b'\t'));
    if semicolons > commas && semicolons >= tabs {
        b';'
    } else if tabs > commas && tabs > semicolons {
        b'\t'
    } else {
        b','
    }
}

fn csv_error(file: &str, error: csv::Error) -> ReadError {
    let message = error.to_string();
    match error.into_kind() {
        csv::ErrorKind::Io(source) => ReadError::Io {
            file: file.to_string(),
            source,
        },
        _ => ReadError::Csv {
            file: file.to_string(),
            message,
        },
    }
}

impl CsvSource {
    /// Opens `path` (gzip-compressed when `gzip`), reads and checks its header against
    /// `columns`; the cells of the `carried` columns (where the file has them) follow the
    /// table's own.
    pub fn open(
        path: &Path,
        name: &str,
        gzip: bool,
        columns: &[ColumnSpec],
        carried: &[String],
    ) -> Result<CsvSource, ReadError> {
        let io = |source| ReadError::Io {
            file: name.to_string(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        crate::io::unchanged::note(path, &file).map_err(|message| ReadError::Changed {
            file: name.to_string(),
            message,
        })?;
        let raw: Box<dyn Read + Send> = if gzip {
            Box::new(MultiGzDecoder::new(BufReader::with_capacity(BUFFER, file)))
        } else {
            Box::new(file)
        };
        let mut input = BufReader::with_capacity(BUFFER, raw);
        let head = input.fill_buf().map_err(io)?;
        if head.is_empty() {
            return Err(ReadError::Empty {
                file: name.to_string(),
            });
        }
        let bom = head.starts_with(b"\xEF\xBB\xBF");
        let delimiter = sniff_delimiter(if bom { &head[3..] } else { head });
        if bom {
            input.consume(3);
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .buffer_capacity(BUFFER)
            .from_reader(input);
        let mut header = ByteRecord::new();
        if !reader
            .read_byte_record(&mut header)
            .map_err(|e| csv_error(name, e))?
        {
            return Err(ReadError::Empty {
                file: name.to_string(),
            });
        }
        let position = |name: &str| header.iter().position(|h| h == name.as_bytes());
        let mut fields: Vec<Option<usize>> =
            columns.iter().map(|spec| position(spec.name)).collect();
        super::check_required(name, columns, &fields)?;
        // Carried columns are named as they are listed: a header that is not UTF-8 is
        // decoded the same lossy way on both sides.
        let names: Vec<String> = header
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect();
        fields.extend(
            carried
                .iter()
                .map(|carried| names.iter().position(|n| n == carried)),
        );
        Ok(CsvSource {
            names,
            reader,
            fields,
            width: header.len(),
            delimiter,
            records: Vec::new(),
            row: 0,
            done: false,
        })
    }

    /// The header's column names, in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Reads and converts the next records, as many as `size` allows; `None` at the end of the
    /// file.
    pub fn next_chunk<T: Table>(
        &mut self,
        file: usize,
        name: &str,
        opts: &ReadOptions,
        size: ChunkSize,
    ) -> Result<Option<Chunk<T>>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let (mut count, mut bytes) = (0, 0);
        while count < size.rows && bytes < size.bytes {
            if count == self.records.len() {
                self.records.push(ByteRecord::new());
            }
            match self.reader.read_byte_record(&mut self.records[count]) {
                Ok(true) => {
                    bytes += self.records[count].as_slice().len();
                    count += 1;
                }
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Err(error) => {
                    self.done = true;
                    return Err(csv_error(name, error));
                }
            }
        }
        if count == 0 {
            return Ok(None);
        }
        let first = self.row + 1;
        self.row += count as u64;
        let (fields, width, delimiter) = (&self.fields[..], self.width, self.delimiter);
        let results: Vec<Result<Sourced<T>, Box<Reject>>> = self.records[..count]
            .par_iter()
            .enumerate()
            .with_min_len(1024)
            .map(|(i, record)| {
                let row = first + i as u64;
                if record.len() != width {
                    return Err(Box::new(bad_row::<T>(record, fields, delimiter, name, row)));
                }
                convert_row(&CsvRow { record, fields }, opts, file, name, row)
            })
            .collect();
        Ok(Some(Chunk::from_results(file, results)))
    }
}

/// The reject of a record with the wrong number of fields: the whole record as its value.
fn bad_row<T: Table>(
    record: &ByteRecord,
    fields: &[Option<usize>],
    delimiter: u8,
    name: &str,
    row: u64,
) -> Reject {
    let mut line = Vec::new();
    for (i, field) in record.iter().enumerate() {
        if i > 0 {
            line.push(delimiter);
        }
        line.extend_from_slice(field);
        if line.len() > 4 * super::values::MAX_VALUE_CHARS {
            break;
        }
    }
    let act_id = T::ACT_ID
        .and_then(|slot| fields[slot])
        .and_then(|field| record.get(field))
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .map(truncate)
        .unwrap_or_default();
    Reject {
        file: name.to_string(),
        row,
        act_id,
        column: String::new(),
        reason: RejectReason::BadRow.as_str().to_string(),
        value: truncate(&String::from_utf8_lossy(&line)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1;2"), b',');
        assert_eq!(sniff_delimiter(b"a;b;c\n1,2,3,4,5"), b';');
        assert_eq!(sniff_delimiter(b"a\tb\tc"), b'\t');
        assert_eq!(sniff_delimiter(b"a"), b',');
        assert_eq!(sniff_delimiter(b""), b',');
    }
}
