//! CSV and CSV.gz input: header checks, then records read in chunks and converted in
//! parallel.

use super::records::{ColumnSpec, Row, Table};
use super::values::{Cell, RejectReason, truncate};
use super::{Chunk, ChunkSize, Converted, ReadError, ReadOptions, convert_row};
use crate::model::Reject;
use csv::ByteRecord;
use flate2::read::MultiGzDecoder;
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Size of the read buffers.
const BUFFER: usize = 1 << 18;

/// The bytes of a CSV file, as its parser reads them, followed by [`QuoteScan`].
type Input = QuoteScan<BufReader<Box<dyn Read + Send>>>;

/// An open CSV file, positioned after its header.
pub struct CsvSource {
    reader: csv::Reader<Input>,
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
    /// Fields of the last record read.
    last_fields: usize,
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

/// Where the parser is in the quoting of a CSV file, as csv-core reads it (RFC 4180,
/// leniently: a quote opens a quoted field only at a field's first byte; elsewhere it is a
/// plain byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// Not in a quoted field.
    Outside,
    /// Between a field's opening quote and the next quote.
    Quoted,
    /// Just past a quote in a quoted field: a second quote is an escaped one, else the field's
    /// quoting is closed.
    QuoteInQuoted,
}

/// Reads through to `inner`, following the quoting of the bytes that pass, so as to tell,
/// at the end of the file, a quoted field never closed. csv-core takes such a field to run
/// to the end of the file: the rows after a stray opening quote are read as its value and
/// vanish, with nothing to say so. The scan jumps from quote to quote (`memchr`): a quote
/// opens a field where the byte before it ends a field or a line (or it is the file's first).
pub(crate) struct QuoteScan<R> {
    inner: R,
    delimiter: u8,
    state: Quoting,
    /// The last byte scanned (a line end before the first).
    last: u8,
    /// A line end was scanned in the quoted field last opened.
    broken: bool,
    /// Bytes came after a line end in the quoted field last opened: the lines after its own.
    spans: bool,
}

impl<R> QuoteScan<R> {
    pub(crate) fn new(inner: R, delimiter: u8) -> QuoteScan<R> {
        QuoteScan {
            inner,
            delimiter,
            state: Quoting::Outside,
            last: b'\n',
            broken: false,
            spans: false,
        }
    }

    /// At the end of the input: whether a quoted field is still open and holds lines after its
    /// own, the rows that would be lost in it. It is then the last field of the last record.
    /// (One open on the file's last line holds that line's end at most: its row is read,
    /// and judged, with that value.)
    pub(crate) fn swallowed_lines(&self) -> bool {
        self.state == Quoting::Quoted && self.spans
    }

    fn scan(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                Quoting::Outside => {
                    let Some(at) = memchr::memchr(b'"', &bytes[i..]) else {
                        break;
                    };
                    let quote = i + at;
                    let before = if quote == 0 {
                        self.last
                    } else {
                        bytes[quote - 1]
                    };
                    if before == self.delimiter || matches!(before, b'\r' | b'\n') {
                        self.state = Quoting::Quoted;
                        (self.broken, self.spans) = (false, false);
                    }
                    i = quote + 1;
                }
                Quoting::Quoted => {
                    let found = memchr::memchr3(b'"', b'\n', b'\r', &bytes[i..]);
                    // Bytes before the next quote or line end, after a line end.
                    let skipped = found.unwrap_or(bytes.len() - i) > 0;
                    self.spans |= self.broken && skipped;
                    let Some(at) = found else {
                        break;
                    };
                    if bytes[i + at] == b'"' {
                        self.spans |= self.broken;
                        self.state = Quoting::QuoteInQuoted;
                    } else {
                        self.broken = true;
                    }
                    i += at + 1;
                }
                Quoting::QuoteInQuoted => {
                    if bytes[i] == b'"' {
                        self.state = Quoting::Quoted;
                        i += 1;
                    } else {
                        // Closed: the byte after it is read as outside any quotes.
                        self.state = Quoting::Outside;
                    }
                }
            }
        }
        if let Some(&last) = bytes.last() {
            self.last = last;
        }
    }
}

impl<R: Read> Read for QuoteScan<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scan(&buf[..n]);
        Ok(n)
    }
}

/// What is wrong with a CSV file whose quote opened in `row`'s `column` is never closed
/// ([`QuoteScan`]), after the file's name.
pub(crate) fn unclosed_quote(row: u64, column: &str) -> String {
    format!(
        "row {row}, column {column}: a quote opens this field and is never closed: every line after it, to the end of the file, would be read as its value (a stray `\"`; a quote inside a field is written `\"\"`, in a field between quotes)"
    )
}

/// The name of field `field` of a header of `names`, or its number past them.
pub(crate) fn field_name(names: &[impl AsRef<str>], field: usize) -> String {
    names.get(field).map_or_else(
        || format!("{} (past the header's {} columns)", field + 1, names.len()),
        |name| name.as_ref().to_string(),
    )
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
        // gzip's magic number: a compressed file named `.csv` (it failed on a "missing" column).
        if !gzip && head.starts_with(&[0x1f, 0x8b]) {
            return Err(io(std::io::Error::other(
                "gzip-compressed content in a file named .csv: name it .csv.gz",
            )));
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
            .from_reader(QuoteScan::new(input, delimiter));
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
        super::check_unique(name, columns, header.iter())?;
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
            last_fields: 0,
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
                    self.last_fields = self.records[count].len();
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
        if self.done && self.reader.get_ref().swallowed_lines() {
            // The quote is open in the last field of the last record: it runs to the end.
            return Err(ReadError::UnclosedQuote {
                file: name.to_string(),
                row: self.row + count as u64,
                column: field_name(&self.names, self.last_fields.saturating_sub(1)),
            });
        }
        if count == 0 {
            return Ok(None);
        }
        let first = self.row + 1;
        self.row += count as u64;
        let (fields, width, delimiter) = (&self.fields[..], self.width, self.delimiter);
        let results: Vec<Converted<T>> = self.records[..count]
            .par_iter()
            .enumerate()
            .with_min_len(1024)
            .map(|(i, record)| {
                let row = first + i as u64;
                if record.len() != width {
                    let whole = bad_row::<T>(record, fields, delimiter, name, row);
                    return Err(Box::from([whole]));
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

    /// Whether a quote left open at the end of `text` swallowed lines, scanned whole and a
    /// byte at a time.
    fn swallowed(text: &str, delimiter: u8) -> bool {
        let mut whole = QuoteScan::new(std::io::empty(), delimiter);
        whole.scan(text.as_bytes());
        let mut bytewise = QuoteScan::new(std::io::empty(), delimiter);
        for byte in text.as_bytes() {
            bytewise.scan(std::slice::from_ref(byte));
        }
        assert_eq!(
            whole.swallowed_lines(),
            bytewise.swallowed_lines(),
            "{text:?}"
        );
        whole.swallowed_lines()
    }

    /// What csv-core reads of `text`: the last field of the last record, if any.
    fn last_field(text: &str) -> Option<String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        records
            .last()
            .and_then(|r| r.iter().next_back().map(str::to_string))
    }

    #[test]
    fn a_quote_left_open_over_later_lines_is_told_from_every_closed_one() {
        // Closed: quoted fields with delimiters, line breaks and escaped quotes; a quote in
        // an unquoted field; bytes after a closing quote; CRLF; empty lines; no final newline;
        // a file opening with a quoted field.
        for closed in [
            "a,b\n1,2\n",
            "a,b\n\"1,x\",\"y\"\"z\"\n",
            "a,b\n\"multi\nline\",2\n",
            "a,b\n\"multi\r\n\"\"line\"\"\",2\n3,4\n",
            "a,b\nab\"c,2\n",
            "a,b\n\"ab\"c,2\n",
            "a,b\n\"ab\"c\"d,2\n",
            "a,b\r\n\"1\",\"2\"\r\n\r\n",
            "a,b\n\"\",\"\"",
            "a,b\n1,\"\"\"\"",
            "\"a\",b\n1,2",
            "",
        ] {
            assert!(!swallowed(closed, b','), "{closed:?}");
        }
        // Open on the last line: that row alone, with what follows the quote (its line end).
        for (own_line, field) in [
            ("a,b\n1,\"", ""),
            ("a,b\n1,\"30\n", "30\n"),
            ("a,b\n1,\"x\"\"\r\n\n\n", "x\"\r\n\n\n"),
            ("a,b\n\"multi\nline\",2\n3,\"4", "4"),
        ] {
            assert!(!swallowed(own_line, b','), "{own_line:?}");
            assert_eq!(last_field(own_line).as_deref(), Some(field), "{own_line:?}");
        }
        // Open over later lines, whatever they hold: csv-core reads them as the last field of
        // the last record (they are lost).
        for (open, field) in [
            ("a,b,c\n1,2,3\n4,5,\"6\n7,8,9\n", "6\n7,8,9\n"),
            ("a,b\n\"1,2\n3,4\n", "1,2\n3,4\n"),
            ("a,b\n1,\"x\n\"\"\n", "x\n\"\n"),
            ("a,b\n1,\"\r\n\"\"", "\r\n\""),
            // A quote inside an unquoted field opens nothing; one at a field's start does.
            ("a,b\nab\"c,\"abc\nx,y\n", "abc\nx,y\n"),
            ("a,b\r\n1,2\r\n\"x,y\r\nz\r\n", "x,y\r\nz\r\n"),
        ] {
            assert!(swallowed(open, b','), "{open:?}");
            assert_eq!(last_field(open).as_deref(), Some(field), "{open:?}");
        }
        // The delimiter is the file's.
        assert!(swallowed("a;b\n\"1;2\";\"3,4\n5\n", b';'));
        assert!(!swallowed("a;b\n1,\"2;3\n4;5\n", b';'));
    }

    #[test]
    fn delimiters() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1;2"), b',');
        assert_eq!(sniff_delimiter(b"a;b;c\n1,2,3,4,5"), b';');
        assert_eq!(sniff_delimiter(b"a\tb\tc"), b'\t');
        assert_eq!(sniff_delimiter(b"a"), b',');
        assert_eq!(sniff_delimiter(b""), b',');
    }
}
