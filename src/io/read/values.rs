//! Cell values and their parsers: bytes (CSV) or typed Arrow values (Parquet) in, model values
//! out. Everything here is allocation-free except where a `String` is the result.
//!
//! Parsers never panic and never trim: `" 26.50"` is a `bad_decimal`.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use std::fmt::Write as _;

/// Why an input row was rejected: the `reason` column of `rejects.csv` (SPEC §4).
///
/// The spelling returned by [`RejectReason::as_str`] is stable: tools outside the project rely
/// on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// A required value is empty (or null in Parquet).
    MissingValue,
    /// A date that is not `YYYY-MM-DD`, or not a real day (`2024-02-31`).
    BadDate,
    /// An amount or decimal that cannot be parsed.
    BadDecimal,
    /// An amount with a non-zero third decimal (CSV), or not a whole number of cents (Parquet
    /// `Decimal128`).
    TooManyDecimals,
    /// `tariff` or `billed` (or a counter) below zero.
    NegativeAmount,
    /// A `category` that is not one of SPEC §2.
    UnknownCategory,
    /// Another enum (`right`, `pathway`, `setting`, `insurance_nature`, `regime`) with an
    /// unknown value.
    UnknownValue,
    /// An integer that cannot be parsed.
    BadInteger,
    /// A number outside its allowed range (`quantity` outside `1..=1_000_000`, an amount
    /// beyond 10^12 €, a year outside `1..=9999`, a negative coefficient).
    OutOfRange,
    /// A boolean other than `true/false/1/0`.
    BadBoolean,
    /// A CSV record with the wrong number of fields (bad quoting usually ends up here too).
    BadRow,
    /// A CSV field that is not valid UTF-8.
    BadEncoding,
    /// A rights period whose `end_date` is before its `start_date`.
    EndBeforeStart,
}

impl RejectReason {
    /// The stable snake_case spelling written in `rejects.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::MissingValue => "missing_value",
            RejectReason::BadDate => "bad_date",
            RejectReason::BadDecimal => "bad_decimal",
            RejectReason::TooManyDecimals => "too_many_decimals",
            RejectReason::NegativeAmount => "negative_amount",
            RejectReason::UnknownCategory => "unknown_category",
            RejectReason::UnknownValue => "unknown_value",
            RejectReason::BadInteger => "bad_integer",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::BadBoolean => "bad_boolean",
            RejectReason::BadRow => "bad_row",
            RejectReason::BadEncoding => "bad_encoding",
            RejectReason::EndBeforeStart => "end_before_start",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest accepted amount, in cents (10^12 €): keeps every later `Decimal` sum far from
/// overflow, whatever the number of rows.
pub const MAX_CENTS: i64 = 100_000_000_000_000;

/// Whether an amount computed from accepted values (a line's `tariff × quantity`, an SNDS
/// line's summed columns) is within [`MAX_CENTS`] too: each output line then fits the
/// outputs' 16 integer digits with room for the sums of 10 000 such lines.
pub fn within_amount_range(amount: Decimal) -> bool {
    amount.abs() <= cents_decimal(MAX_CENTS)
}

/// The largest accepted `coefficient` (the 24 € fee's threshold is 60): as large as an
/// amount, so that the sums of a group's coefficients never overflow.
pub const MAX_COEFFICIENT: i64 = MAX_CENTS / 100;

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_FROM_CE: i64 = 719_163;

/// Longest `value` kept in a reject, in characters.
pub const MAX_VALUE_CHARS: usize = 200;

/// One cell of an input row, before conversion. CSV gives only `Null` (empty field) and
/// `Text`; Parquet gives the typed variants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// Empty CSV field, Parquet null, or empty Parquet string.
    Null,
    /// Raw bytes: a CSV field, not yet checked for UTF-8.
    Text(&'a [u8]),
    /// A Parquet string: Arrow has already checked it is UTF-8.
    Str(&'a str),
    /// Any Parquet integer.
    Int(i64),
    /// Parquet `Float32`/`Float64`.
    Float(f64),
    /// Parquet decimal: unscaled value and scale.
    Decimal(i128, i8),
    /// Parquet `Date32`/`Date64`/timestamp, as days since 1970-01-01.
    Days(i64),
    /// Parquet `Boolean`.
    Bool(bool),
}

impl<'a> Cell<'a> {
    /// The cell with a string seen as its bytes, for the parsers of numbers, dates and
    /// booleans (which read bytes whatever their source).
    pub fn raw(self) -> Cell<'a> {
        match self {
            Cell::Str(text) => Cell::Text(text.as_bytes()),
            other => other,
        }
    }

    /// The cell as written in a reject's `value`: the raw text (lossily decoded), at most
    /// [`MAX_VALUE_CHARS`] characters.
    pub fn render(&self) -> String {
        match *self {
            Cell::Null => String::new(),
            Cell::Text(bytes) => truncate(&String::from_utf8_lossy(bytes)),
            Cell::Str(text) => truncate(text),
            Cell::Int(v) => v.to_string(),
            Cell::Float(v) => truncate(&v.to_string()),
            Cell::Decimal(v, scale) => render_decimal(v, scale),
            Cell::Days(days) => match days_to_date(days) {
                Some(date) => date.to_string(),
                None => format!("{days} days since 1970-01-01"),
            },
            Cell::Bool(v) => v.to_string(),
        }
    }
}

/// `text`, cut to [`MAX_VALUE_CHARS`] characters.
pub fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_VALUE_CHARS) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text.to_string(),
    }
}

fn render_decimal(value: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut text = value.to_string();
        if value != 0 {
            for _ in 0..(-(scale as i16)) {
                text.push('0');
            }
        }
        return truncate(&text);
    }
    let digits = value.unsigned_abs().to_string();
    let scale = scale as usize;
    let (int, frac) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("", digits.as_str())
    };
    let mut text = String::new();
    if value < 0 {
        text.push('-');
    }
    text.push_str(if int.is_empty() { "0" } else { int });
    text.push('.');
    for _ in frac.len()..scale {
        text.push('0');
    }
    text.push_str(frac);
    truncate(&text)
}

/// Parses exactly `YYYY-MM-DD` (year 0001–9999, a real day).
pub fn parse_date(bytes: &[u8]) -> Option<NaiveDate> {
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = digits_u32(&bytes[0..4])?;
    let month = digits_u32(&bytes[5..7])?;
    let day = digits_u32(&bytes[8..10])?;
    if year == 0 {
        return None;
    }
    NaiveDate::from_ymd_opt(year as i32, month, day)
}

fn digits_u32(bytes: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    Some(value)
}

/// The date `days` after 1970-01-01, if it falls in years 0001–9999.
pub fn days_to_date(days: i64) -> Option<NaiveDate> {
    let ce = i32::try_from(days.checked_add(UNIX_EPOCH_FROM_CE)?).ok()?;
    let date = NaiveDate::from_num_days_from_ce_opt(ce)?;
    (1..=9999).contains(&date.year()).then_some(date)
}

/// Splits an optional leading sign.
fn split_sign(bytes: &[u8]) -> (bool, &[u8]) {
    match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    }
}

fn is_separator(b: u8, decimal_comma: bool) -> bool {
    b == b'.' || (decimal_comma && b == b',')
}

/// Parses a CSV amount (`26.50`, `26.5`, `.81`, `-3`, `+4.`; `1,5` with `decimal_comma`) into
/// cents. Decimals beyond the second must be zeros (`26.500` is fine, `26.505` is
/// `too_many_decimals`). No exponent, no thousands separator, no spaces.
pub fn parse_cents(bytes: &[u8], decimal_comma: bool) -> Result<i64, RejectReason> {
    let (negative, rest) = split_sign(bytes);
    let mut int: i64 = 0;
    let mut overflow = false;
    let mut digits = 0usize;
    let mut i = 0;
    while i < rest.len() && rest[i].is_ascii_digit() {
        let d = i64::from(rest[i] - b'0');
        match int.checked_mul(10).and_then(|v| v.checked_add(d)) {
            Some(v) => int = v,
            None => overflow = true,
        }
        digits += 1;
        i += 1;
    }
    let mut frac: i64 = 0;
    let mut frac_digits = 0usize;
    let mut extra = false;
    if i < rest.len() && is_separator(rest[i], decimal_comma) {
        i += 1;
        while i < rest.len() && rest[i].is_ascii_digit() {
            let d = i64::from(rest[i] - b'0');
            if frac_digits < 2 {
                frac = frac * 10 + d;
            } else if d != 0 {
                extra = true;
            }
            frac_digits += 1;
            i += 1;
        }
    }
    if i != rest.len() || digits + frac_digits == 0 {
        return Err(RejectReason::BadDecimal);
    }
    if extra {
        return Err(RejectReason::TooManyDecimals);
    }
    if frac_digits == 1 {
        frac *= 10;
    }
    let cents = int
        .checked_mul(100)
        .and_then(|v| v.checked_add(frac))
        .filter(|v| !overflow && *v <= MAX_CENTS)
        .ok_or(RejectReason::OutOfRange)?;
    Ok(if negative { -cents } else { cents })
}

/// Parses a decimal with any number of decimals (up to 28) into cents, rounding half away from
/// zero. Used on the shortest representation of a float.
fn parse_cents_rounded(bytes: &[u8]) -> Result<i64, RejectReason> {
    let (negative, rest) = split_sign(bytes);
    let mut int: i64 = 0;
    let mut i = 0;
    let mut digits = 0usize;
    while i < rest.len() && rest[i].is_ascii_digit() {
        int = int
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(rest[i] - b'0')))
            .ok_or(RejectReason::OutOfRange)?;
        digits += 1;
        i += 1;
    }
    let mut frac: i64 = 0;
    let mut frac_digits = 0usize;
    let mut round_up = false;
    if i < rest.len() && rest[i] == b'.' {
        i += 1;
        while i < rest.len() && rest[i].is_ascii_digit() {
            let d = i64::from(rest[i] - b'0');
            if frac_digits < 2 {
                frac = frac * 10 + d;
            } else if frac_digits == 2 {
                round_up = d >= 5;
            }
            frac_digits += 1;
            i += 1;
        }
    }
    if i != rest.len() || digits + frac_digits == 0 {
        return Err(RejectReason::BadDecimal);
    }
    if frac_digits == 1 {
        frac *= 10;
    }
    let cents = int
        .checked_mul(100)
        .and_then(|v| v.checked_add(frac + i64::from(round_up)))
        .filter(|v| *v <= MAX_CENTS)
        .ok_or(RejectReason::OutOfRange)?;
    Ok(if negative { -cents } else { cents })
}

/// A fixed buffer that `write!` can fill without allocating.
struct StackText {
    buf: [u8; 64],
    len: usize,
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Calls `f` with the shortest decimal text that round-trips to `value` (so `0.1` is `0.1`,
/// not `0.1000000000000000055…`). `Err(OutOfRange)` beyond 10^15, `Err(BadDecimal)` for
/// NaN and infinities; magnitudes below 10^-12 are zero.
fn with_shortest<T>(
    value: f64,
    f: impl FnOnce(&[u8]) -> Result<T, RejectReason>,
) -> Result<T, RejectReason> {
    if !value.is_finite() {
        return Err(RejectReason::BadDecimal);
    }
    if value.abs() >= 1e15 {
        return Err(RejectReason::OutOfRange);
    }
    if value.abs() < 1e-12 {
        return f(b"0");
    }
    let mut text = StackText {
        buf: [0; 64],
        len: 0,
    };
    write!(text, "{value}").map_err(|_| RejectReason::OutOfRange)?;
    f(&text.buf[..text.len])
}

/// A float amount in cents, rounded half away from zero on its shortest decimal
/// representation (`2.675` → 268 although the binary value is slightly below 2.675).
pub fn float_to_cents(value: f64) -> Result<i64, RejectReason> {
    with_shortest(value, parse_cents_rounded)
}

/// A Parquet decimal (`value` × 10^-`scale`) in cents; it must be a whole number of cents.
pub fn decimal_to_cents(value: i128, scale: i8) -> Result<i64, RejectReason> {
    let cents = if scale <= 2 {
        let factor = 10i128
            .checked_pow(u32::from((2 - scale as i16) as u16))
            .ok_or(RejectReason::OutOfRange)?;
        value.checked_mul(factor).ok_or(RejectReason::OutOfRange)?
    } else {
        let divisor = 10i128
            .checked_pow((scale - 2) as u32)
            .ok_or(RejectReason::OutOfRange)?;
        if value % divisor != 0 {
            return Err(RejectReason::TooManyDecimals);
        }
        value / divisor
    };
    i64::try_from(cents)
        .ok()
        .filter(|c| c.unsigned_abs() <= MAX_CENTS as u64)
        .ok_or(RejectReason::OutOfRange)
}

/// An integer number of euros in cents.
pub fn int_to_cents(value: i64) -> Result<i64, RejectReason> {
    value
        .checked_mul(100)
        .filter(|c| c.unsigned_abs() <= MAX_CENTS as u64)
        .ok_or(RejectReason::OutOfRange)
}

/// Cents as a `Decimal` of scale 2 (`26.5` € is `26.50`).
pub fn cents_decimal(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// Parses a decimal with any number of decimals (at most 28 significant places), e.g. a
/// coefficient `1.5` or `0.125`. Same syntax as [`parse_cents`].
pub fn parse_decimal(bytes: &[u8], decimal_comma: bool) -> Result<Decimal, RejectReason> {
    let (negative, rest) = split_sign(bytes);
    let mut mantissa: i128 = 0;
    let mut overflow = false;
    let mut digits = 0usize;
    let mut scale = 0u32;
    let mut i = 0;
    let mut push = |d: u8, mantissa: &mut i128| match mantissa
        .checked_mul(10)
        .and_then(|v| v.checked_add(i128::from(d - b'0')))
    {
        Some(v) => *mantissa = v,
        None => overflow = true,
    };
    while i < rest.len() && rest[i].is_ascii_digit() {
        push(rest[i], &mut mantissa);
        digits += 1;
        i += 1;
    }
    if i < rest.len() && is_separator(rest[i], decimal_comma) {
        i += 1;
        while i < rest.len() && rest[i].is_ascii_digit() {
            push(rest[i], &mut mantissa);
            digits += 1;
            scale += 1;
            i += 1;
        }
    }
    if i != rest.len() || digits == 0 {
        return Err(RejectReason::BadDecimal);
    }
    if overflow || scale > 28 {
        return Err(RejectReason::OutOfRange);
    }
    let mantissa = if negative { -mantissa } else { mantissa };
    Decimal::try_from_i128_with_scale(mantissa, scale).map_err(|_| RejectReason::OutOfRange)
}

/// A float as a `Decimal`, from its shortest decimal representation.
pub fn float_to_decimal(value: f64) -> Result<Decimal, RejectReason> {
    with_shortest(value, |text| parse_decimal(text, false))
}

/// A Parquet decimal as a `Decimal` (scale brought into `0..=28`).
pub fn decimal_to_decimal(mut value: i128, mut scale: i8) -> Result<Decimal, RejectReason> {
    while scale < 0 {
        value = value.checked_mul(10).ok_or(RejectReason::OutOfRange)?;
        scale += 1;
    }
    while scale > 28 && value % 10 == 0 {
        value /= 10;
        scale -= 1;
    }
    if scale > 28 {
        return Err(RejectReason::OutOfRange);
    }
    Decimal::try_from_i128_with_scale(value, scale as u32).map_err(|_| RejectReason::OutOfRange)
}

/// Parses a base-10 integer with an optional sign (`3`, `+3`, `-1`).
pub fn parse_int(bytes: &[u8]) -> Result<i64, RejectReason> {
    let (negative, rest) = split_sign(bytes);
    if rest.is_empty() {
        return Err(RejectReason::BadInteger);
    }
    let mut value: i64 = 0;
    let mut overflow = false;
    for &b in rest {
        if !b.is_ascii_digit() {
            return Err(RejectReason::BadInteger);
        }
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    if overflow {
        return Err(RejectReason::OutOfRange);
    }
    Ok(if negative { -value } else { value })
}

/// A float that must hold a whole number.
pub fn float_to_int(value: f64) -> Result<i64, RejectReason> {
    if !value.is_finite() || value.fract() != 0.0 {
        return Err(RejectReason::BadInteger);
    }
    if value.abs() >= 9.0e18 {
        return Err(RejectReason::OutOfRange);
    }
    Ok(value as i64)
}

/// Parses `true`/`false`/`1`/`0` (also `True`/`TRUE`/`False`/`FALSE`, as pandas writes them).
pub fn parse_bool(bytes: &[u8]) -> Option<bool> {
    match bytes {
        b"1" => Some(true),
        b"0" => Some(false),
        _ if bytes.eq_ignore_ascii_case(b"true") => Some(true),
        _ if bytes.eq_ignore_ascii_case(b"false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_date(b"2024-02-29"),
            NaiveDate::from_ymd_opt(2024, 2, 29)
        );
        for bad in [
            &b"2024-02-31"[..],
            b"2023-02-29",
            b"2024-2-01",
            b"2024/02/01",
            b"0000-01-01",
            b"2024-13-01",
            b"2024-01-00",
            b" 2024-01-01",
            b"2024-01-01T00:00:00",
            b"",
            b"abcd-ef-gh",
        ] {
            assert_eq!(parse_date(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(days_to_date(0), NaiveDate::from_ymd_opt(1970, 1, 1));
        assert_eq!(days_to_date(19_723), NaiveDate::from_ymd_opt(2024, 1, 1));
        assert_eq!(days_to_date(-1), NaiveDate::from_ymd_opt(1969, 12, 31));
        assert_eq!(days_to_date(i64::MAX), None);
        assert_eq!(days_to_date(i64::MIN), None);
        assert_eq!(days_to_date(3_000_000), None);
    }

    #[test]
    fn csv_amounts() {
        assert_eq!(parse_cents(b"26.50", false), Ok(2650));
        assert_eq!(parse_cents(b"26.5", false), Ok(2650));
        assert_eq!(parse_cents(b".81", false), Ok(81));
        assert_eq!(parse_cents(b"26", false), Ok(2600));
        assert_eq!(parse_cents(b"26.", false), Ok(2600));
        assert_eq!(parse_cents(b"+1.05", false), Ok(105));
        assert_eq!(parse_cents(b"-1.05", false), Ok(-105));
        assert_eq!(parse_cents(b"-0", false), Ok(0));
        assert_eq!(parse_cents(b"26.500", false), Ok(2650));
        assert_eq!(
            parse_cents(b"26.505", false),
            Err(RejectReason::TooManyDecimals)
        );
        assert_eq!(parse_cents(b"1,5", false), Err(RejectReason::BadDecimal));
        assert_eq!(parse_cents(b"1,5", true), Ok(150));
        assert_eq!(parse_cents(b"1.5", true), Ok(150));
        for bad in [
            &b""[..],
            b".",
            b"-",
            b"1e3",
            b" 1",
            b"1 ",
            b"1.2.3",
            b"abc",
            b"--1",
            b"1_000",
        ] {
            assert_eq!(
                parse_cents(bad, false),
                Err(RejectReason::BadDecimal),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_cents(b"99999999999999999999999", false),
            Err(RejectReason::OutOfRange)
        );
        assert_eq!(parse_cents(b"1000000000000", false), Ok(MAX_CENTS));
        assert_eq!(
            parse_cents(b"1000000000000.01", false),
            Err(RejectReason::OutOfRange)
        );
    }

    #[test]
    fn float_amounts() {
        assert_eq!(float_to_cents(0.1), Ok(10));
        assert_eq!(float_to_cents(26.5), Ok(2650));
        assert_eq!(float_to_cents(2.675), Ok(268));
        assert_eq!(float_to_cents(0.005), Ok(1));
        assert_eq!(float_to_cents(-0.005), Ok(-1));
        assert_eq!(float_to_cents(0.0049), Ok(0));
        assert_eq!(float_to_cents(1e-300), Ok(0));
        assert_eq!(float_to_cents(-0.0), Ok(0));
        assert_eq!(float_to_cents(0.1 + 0.2), Ok(30));
        assert_eq!(float_to_cents(1.999), Ok(200));
        assert_eq!(float_to_cents(f64::NAN), Err(RejectReason::BadDecimal));
        assert_eq!(float_to_cents(f64::INFINITY), Err(RejectReason::BadDecimal));
        assert_eq!(float_to_cents(1e300), Err(RejectReason::OutOfRange));
        assert_eq!(float_to_cents(1e14), Err(RejectReason::OutOfRange));
        assert_eq!(float_to_decimal(1.5), Ok(d("1.5")));
        assert_eq!(float_to_decimal(0.1), Ok(d("0.1")));
    }

    #[test]
    fn parquet_decimals() {
        assert_eq!(decimal_to_cents(2650, 2), Ok(2650));
        assert_eq!(decimal_to_cents(265, 1), Ok(2650));
        assert_eq!(decimal_to_cents(26_500, 3), Ok(2650));
        assert_eq!(
            decimal_to_cents(26_505, 3),
            Err(RejectReason::TooManyDecimals)
        );
        assert_eq!(decimal_to_cents(26, 0), Ok(2600));
        assert_eq!(decimal_to_cents(3, -1), Ok(3000));
        assert_eq!(decimal_to_cents(1, -120), Err(RejectReason::OutOfRange));
        assert_eq!(
            decimal_to_cents(i128::MAX, 2),
            Err(RejectReason::OutOfRange)
        );
        assert_eq!(
            decimal_to_cents(i128::MIN, 38),
            Err(RejectReason::TooManyDecimals)
        );
        assert_eq!(decimal_to_cents(-150, 2), Ok(-150));
        assert_eq!(decimal_to_decimal(15, 1), Ok(d("1.5")));
        assert_eq!(decimal_to_decimal(15, -2), Ok(d("1500")));
        assert_eq!(decimal_to_decimal(1, 38), Err(RejectReason::OutOfRange));
        assert_eq!(cents_decimal(2650).to_string(), "26.50");
    }

    #[test]
    fn general_decimals() {
        assert_eq!(parse_decimal(b"1.5", false), Ok(d("1.5")));
        assert_eq!(parse_decimal(b"0.125", false), Ok(d("0.125")));
        assert_eq!(parse_decimal(b"-2", false), Ok(d("-2")));
        assert_eq!(parse_decimal(b"1,5", true), Ok(d("1.5")));
        assert_eq!(parse_decimal(b"1,5", false), Err(RejectReason::BadDecimal));
        assert_eq!(parse_decimal(b"", false), Err(RejectReason::BadDecimal));
        assert_eq!(
            parse_decimal(b"0.00000000000000000000000000001", false),
            Err(RejectReason::OutOfRange)
        );
        assert_eq!(
            parse_decimal(&[b'9'; 60], false),
            Err(RejectReason::OutOfRange)
        );
    }

    #[test]
    fn integers_and_booleans() {
        assert_eq!(parse_int(b"3"), Ok(3));
        assert_eq!(parse_int(b"+3"), Ok(3));
        assert_eq!(parse_int(b"-1"), Ok(-1));
        assert_eq!(parse_int(b"2.0"), Err(RejectReason::BadInteger));
        assert_eq!(parse_int(b"-"), Err(RejectReason::BadInteger));
        assert_eq!(parse_int(b"x"), Err(RejectReason::BadInteger));
        assert_eq!(
            parse_int(b"99999999999999999999"),
            Err(RejectReason::OutOfRange)
        );
        assert_eq!(float_to_int(3.0), Ok(3));
        assert_eq!(float_to_int(3.5), Err(RejectReason::BadInteger));
        assert_eq!(float_to_int(f64::NAN), Err(RejectReason::BadInteger));
        assert_eq!(float_to_int(1e30), Err(RejectReason::OutOfRange));
        assert_eq!(parse_bool(b"true"), Some(true));
        assert_eq!(parse_bool(b"True"), Some(true));
        assert_eq!(parse_bool(b"0"), Some(false));
        assert_eq!(parse_bool(b"FALSE"), Some(false));
        assert_eq!(parse_bool(b"yes"), None);
        assert_eq!(parse_bool(b"2"), None);
    }

    #[test]
    fn rendering() {
        assert_eq!(Cell::Decimal(2650, 2).render(), "26.50");
        assert_eq!(Cell::Decimal(-5, 3).render(), "-0.005");
        assert_eq!(Cell::Decimal(3, -2).render(), "300");
        assert_eq!(Cell::Days(0).render(), "1970-01-01");
        assert_eq!(Cell::Text(b"\xff").render(), "\u{fffd}");
        assert_eq!(Cell::Text(&[b'a'; 500]).render().len(), MAX_VALUE_CHARS);
        assert_eq!(truncate(&"é".repeat(300)).chars().count(), MAX_VALUE_CHARS);
    }
}
