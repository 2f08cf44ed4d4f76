//! Input profiles: SNDS (DCIR) and Open DAMIR sources mapped onto the canonical model.
//!
//! Auditors and researchers hold files in the shapes the Assurance Maladie publishes, not in
//! rac's canonical columns (SPEC §2). A *profile* reads them as they come and maps their columns
//! and codes onto the canonical model, with the code tables of `profiles/` ([`mapping`]):
//!
//! - [`damir`]: the public Open DAMIR monthly files (`;`-separated, aggregated lines with no
//!   patient and no day). [`damir::audit_damir`] recomputes what can be recomputed per line
//!   (rate, base × rate per prestation, PF and franchise unit amounts by care month, the
//!   out-of-pathway majoration cap, the complementary C2S / Alsace-Moselle parts) and explains
//!   every line it does not reproduce.
//! - [`snds`]: DCIR extracts (ER_PRS_F, with IR_BEN_R, IR_IMB_R, IR_MAT_R, IR_ORC_R):
//!   [`snds::read_snds_acts`] turns them into canonical [`Act`](crate::model::Act)s,
//!   [`Beneficiary`](crate::model::Beneficiary)s and [`RightPeriod`](crate::model::RightPeriod)s,
//!   sets the recorded PF and franchise lines aside as deductions to compare, and counts every
//!   unmapped code.
//!
//! Everything here is pure apart from reading the given files: nothing is printed.

pub mod damir;
pub mod mapping;
pub mod snds;

use rust_decimal::Decimal;

pub use damir::{AuditOptions, DamirReport, audit_damir, audit_damir_with};
pub use mapping::{Mapping, Unmapped};
pub use snds::{SndsExtract, read_snds_acts};

/// The input profiles of `rac compute` / `rac audit` (`--profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileKind {
    /// rac's own columns (SPEC §2).
    Canonical,
    /// DCIR extracts (ER_PRS_F and the referentials).
    Snds,
    /// Open DAMIR monthly files (audit only: the lines are aggregated).
    Damir,
}

impl ProfileKind {
    pub const ALL: &'static [ProfileKind] = &[
        ProfileKind::Canonical,
        ProfileKind::Snds,
        ProfileKind::Damir,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::Canonical => "canonical",
            ProfileKind::Snds => "snds",
            ProfileKind::Damir => "damir",
        }
    }

    pub fn parse(text: &str) -> Option<ProfileKind> {
        ProfileKind::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == text)
    }
}

/// Errors of the profiles: the file cannot be read or lacks what the profile needs. A bad
/// *row* is never an error: it is reported (rejected, explained or counted as unmapped).
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Csv {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error("{path}: missing column `{column}` (needed by the {profile} profile)")]
    MissingColumn {
        path: String,
        column: String,
        profile: &'static str,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("profiles/{origin}: line {line}: {message}")]
    Table {
        origin: String,
        line: usize,
        message: String,
    },
}

/// Parses an amount as SNDS and Open DAMIR write it: `.81`, `-.57`, `26.5`, `26,50`, with
/// surrounding blanks; empty is `None` (null). Anything else is an error (the text back).
pub fn parse_amount(text: &str) -> Result<Option<Decimal>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let t = t.replace(',', ".");
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", t.strip_prefix('+').unwrap_or(&t)),
    };
    let digits = if digits.starts_with('.') {
        format!("0{digits}")
    } else {
        digits.to_string()
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(text.to_string());
    }
    format!("{sign}{digits}")
        .parse::<Decimal>()
        .map(|d| Some(d.normalize()))
        .map_err(|_| text.to_string())
}

/// Opens a file, through gzip when its name ends in `.gz`.
pub(crate) fn open(path: &std::path::Path) -> Result<Box<dyn std::io::Read>, ProfileError> {
    let file = std::fs::File::open(path).map_err(|source| ProfileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let reader = std::io::BufReader::new(file);
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn amounts_as_open_damir_writes_them() {
        assert_eq!(parse_amount(".81"), Ok(Some(dec!(0.81))));
        assert_eq!(parse_amount("-.57"), Ok(Some(dec!(-0.57))));
        assert_eq!(parse_amount("4.4"), Ok(Some(dec!(4.4))));
        assert_eq!(parse_amount("26,50"), Ok(Some(dec!(26.5))));
        assert_eq!(parse_amount(" 100 "), Ok(Some(dec!(100))));
        assert_eq!(parse_amount(""), Ok(None));
        assert!(parse_amount("1.2.3").is_err());
        assert!(parse_amount("abc").is_err());
        assert!(parse_amount("-").is_err());
    }

    #[test]
    fn profile_names() {
        for p in ProfileKind::ALL {
            assert_eq!(ProfileKind::parse(p.as_str()), Some(*p));
        }
        assert_eq!(ProfileKind::parse("x"), None);
    }
}
