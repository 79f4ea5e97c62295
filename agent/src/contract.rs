//! Product contracts: the TOML a data steward pins for one export, validated into typed settings.
//!
//! Owns the raw (serde) shape, the validation rules and the typed [`Contract`] the converter runs
//! on. It does not read CSV or write Parquet. Every validation error names the product and the key.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use lakemesh_shared::names;
use serde::{Deserialize, Serialize};

use crate::datefmt::DateFormat;

/// Why a contract was refused.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    #[error("cannot read contract {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("contract {path}: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("product {product:?}: key `{key}`: {reason}")]
    Invalid {
        product: String,
        key: String,
        reason: String,
    },
}

fn invalid(product: &str, key: impl Into<String>, reason: impl Into<String>) -> ContractError {
    ContractError::Invalid {
        product: product.to_string(),
        key: key.into(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw shape (what the TOML says)
// ---------------------------------------------------------------------------------------------

/// One `[[product]]` table, or a standalone contract file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawContract {
    /// Table name, `[a-z][a-z0-9_]*`.
    pub name: String,
    /// Data type (with the producer's origin it picks the Glue database), `[a-z][a-z0-9_]*`.
    pub domain: String,
    /// Drop folder for this product; default `{state_dir}/inbox/{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox: Option<PathBuf>,
    /// CSV dialect.
    #[serde(default)]
    pub csv: RawCsv,
    /// `reject_file` (default) or `quarantine_rows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    /// With `quarantine_rows`: reject the whole file above this share of bad rows (default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rejected_ratio: Option<f64>,
    /// `error` (default) or `ignore`: what to do with source columns the contract does not list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_columns: Option<String>,
    /// Parquet output settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<RawOutput>,
    /// Hive partition keys, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<RawPartition>,
    /// Declared columns; empty means discovery mode (see `lakemesh-agent infer`).
    #[serde(default)]
    pub columns: Vec<RawColumn>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCsv {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_footer_rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thousands: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trim_strings: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd_level: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_file_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_group_bytes: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPartition {
    pub column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formats: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub true_values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_values: Option<Vec<String>>,
}

// ---------------------------------------------------------------------------------------------
// Typed settings
// ---------------------------------------------------------------------------------------------

/// Text encoding of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// BOM if present, else strict UTF-8 if the whole file is valid, else the fallback.
    Auto,
    Utf8,
    Windows1252,
    Iso8859_1,
    /// UTF-16 with a BOM (LE or BE); without a BOM, little-endian (what Excel writes).
    Utf16,
}

impl Encoding {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "auto" => Self::Auto,
            "utf-8" | "utf8" => Self::Utf8,
            "windows-1252" | "cp1252" => Self::Windows1252,
            "iso-8859-1" | "latin-1" | "latin1" => Self::Iso8859_1,
            "utf-16" | "utf16" => Self::Utf16,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Utf8 => "utf-8",
            Self::Windows1252 => "windows-1252",
            Self::Iso8859_1 => "iso-8859-1",
            Self::Utf16 => "utf-16",
        }
    }
}

/// Field delimiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delimiter {
    Fixed(u8),
    /// Sniffed among `, ; | TAB`.
    Auto,
}

#[derive(Debug, Clone)]
pub struct CsvSettings {
    pub delimiter: Delimiter,
    pub quote: u8,
    pub encoding: Encoding,
    pub fallback_encoding: Encoding,
    pub header: bool,
    pub skip_rows: u64,
    pub skip_footer_rows: u64,
    pub decimal: u8,
    pub thousands: Option<u8>,
    pub null_values: Vec<String>,
    pub trim_strings: bool,
}

/// Column type, with Athena's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int,
    BigInt,
    Double,
    Decimal { precision: u8, scale: i8 },
    Boolean,
    Date,
    Timestamp,
}

impl ColumnType {
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "string" => Self::String,
            "int" | "integer" => Self::Int,
            "bigint" => Self::BigInt,
            "double" => Self::Double,
            "boolean" => Self::Boolean,
            "date" => Self::Date,
            "timestamp" => Self::Timestamp,
            _ => {
                let Some(args) = t.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')'))
                else {
                    return Err(format!(
                        "unknown type {s:?}; expected string, int, bigint, double, decimal(p,s), boolean, date or timestamp"
                    ));
                };
                let mut parts = args.split(',').map(str::trim);
                let (Some(p), Some(sc), None) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(format!(
                        "type {s:?}: decimal needs precision and scale, e.g. decimal(12,2)"
                    ));
                };
                let p: u8 = p
                    .parse()
                    .map_err(|_| format!("type {s:?}: precision {p:?} is not a number"))?;
                let sc: u8 = sc
                    .parse()
                    .map_err(|_| format!("type {s:?}: scale {sc:?} is not a number"))?;
                if !(1..=38).contains(&p) {
                    return Err(format!("type {s:?}: precision must be 1..=38"));
                }
                if sc > p {
                    return Err(format!("type {s:?}: scale must not exceed precision"));
                }
                Self::Decimal {
                    precision: p,
                    scale: sc as i8,
                }
            }
        })
    }

    pub fn is_temporal(self) -> bool {
        matches!(self, Self::Date | Self::Timestamp)
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String => f.write_str("string"),
            Self::Int => f.write_str("int"),
            Self::BigInt => f.write_str("bigint"),
            Self::Double => f.write_str("double"),
            Self::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            Self::Boolean => f.write_str("boolean"),
            Self::Date => f.write_str("date"),
            Self::Timestamp => f.write_str("timestamp"),
        }
    }
}

/// What happens to a column's values on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pii {
    Keep,
    /// Not written at all.
    Drop,
    /// Keyed HMAC-SHA256, lowercase hex.
    Hmac,
    /// Dates and timestamps generalised to their year (written as `int`).
    Year,
    /// First N characters kept.
    Truncate(usize),
}

impl Pii {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "keep" => Self::Keep,
            "drop" => Self::Drop,
            "hmac" => Self::Hmac,
            "year" => Self::Year,
            _ => match s.strip_prefix("truncate:") {
                Some(n) => match n.parse::<usize>() {
                    Ok(n) if n > 0 => Self::Truncate(n),
                    _ => {
                        return Err(format!(
                            "{s:?}: truncate needs a positive length, e.g. truncate:3"
                        ));
                    }
                },
                None => {
                    return Err(format!(
                        "unknown pii {s:?}; expected keep, drop, hmac, year or truncate:N"
                    ));
                }
            },
        })
    }
}

impl fmt::Display for Pii {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keep => f.write_str("keep"),
            Self::Drop => f.write_str("drop"),
            Self::Hmac => f.write_str("hmac"),
            Self::Year => f.write_str("year"),
            Self::Truncate(n) => write!(f, "truncate:{n}"),
        }
    }
}

/// How a column finds its source field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Exact header (surrounding spaces trimmed).
    Header(String),
    /// 0-based position.
    Index(usize),
    /// The header whose normalised form equals the column name.
    ByName,
}

#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    pub ty: ColumnType,
    pub source: Source,
    pub formats: Vec<DateFormat>,
    pub null_values: Vec<String>,
    pub pii: Pii,
    pub true_values: Vec<String>,
    pub false_values: Vec<String>,
}

impl ColumnSpec {
    /// The type written to Parquet (after pseudonymisation).
    pub fn output_type(&self) -> ColumnType {
        match self.pii {
            Pii::Year => ColumnType::Int,
            Pii::Hmac | Pii::Truncate(_) => ColumnType::String,
            _ => self.ty,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Identity,
    Year,
    Month,
    Day,
}

#[derive(Debug, Clone)]
pub struct PartitionSpec {
    /// Index into [`Contract::columns`].
    pub column: usize,
    pub transform: Transform,
    /// Key name in the folder (`year=2024`).
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    RejectFile,
    QuarantineRows,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Zstd(i32),
    Snappy,
}

#[derive(Debug, Clone)]
pub struct OutputSettings {
    pub compression: Compression,
    pub target_file_bytes: u64,
    pub row_group_bytes: u64,
}

/// A validated product contract.
#[derive(Debug, Clone)]
pub struct Contract {
    pub name: String,
    pub domain: String,
    pub inbox: Option<PathBuf>,
    pub csv: CsvSettings,
    pub on_error: OnError,
    pub max_rejected_ratio: f64,
    pub ignore_extra_columns: bool,
    pub output: OutputSettings,
    pub partition_by: Vec<PartitionSpec>,
    pub columns: Vec<ColumnSpec>,
}

pub const DEFAULT_TARGET_FILE_BYTES: u64 = 256 * 1024 * 1024;
pub const DEFAULT_ROW_GROUP_BYTES: u64 = 128 * 1024 * 1024;

impl Contract {
    /// Reads and validates a standalone contract file.
    pub fn from_file(path: &Path) -> Result<Self, ContractError> {
        let text = std::fs::read_to_string(path).map_err(|source| ContractError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates contract TOML; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ContractError> {
        let raw: RawContract = toml::from_str(text).map_err(|e| ContractError::Toml {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Self::try_from(raw)
    }

    /// Whether the contract declares no columns (discovery mode).
    pub fn is_discovery(&self) -> bool {
        self.columns.is_empty()
    }

    /// Columns written into the Parquet body: not dropped, not identity partition keys.
    pub fn body_columns(&self) -> impl Iterator<Item = (usize, &ColumnSpec)> {
        self.columns.iter().enumerate().filter(|(i, c)| {
            c.pii != Pii::Drop
                && !self
                    .partition_by
                    .iter()
                    .any(|p| p.column == *i && p.transform == Transform::Identity)
        })
    }

    pub fn needs_pseudonym_key(&self) -> bool {
        self.columns.iter().any(|c| c.pii == Pii::Hmac)
    }
}

fn one_byte(product: &str, key: &str, s: &str) -> Result<u8, ContractError> {
    match s {
        "\\t" | "\t" | "tab" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(invalid(
            product,
            key,
            format!("{s:?} must be a single ASCII character"),
        )),
    }
}

impl TryFrom<RawContract> for Contract {
    type Error = ContractError;

    fn try_from(raw: RawContract) -> Result<Self, ContractError> {
        let p = raw.name.clone();
        let p = p.as_str();
        names::check_identifier(&raw.name).map_err(|e| invalid(p, "name", e.to_string()))?;
        names::check_identifier(&raw.domain).map_err(|e| invalid(p, "domain", e.to_string()))?;

        // csv
        let c = &raw.csv;
        let delimiter = match c.delimiter.as_deref() {
            None => Delimiter::Fixed(b','),
            Some("auto") => Delimiter::Auto,
            Some(s) => {
                let b = one_byte(p, "csv.delimiter", s)?;
                if matches!(b, b'"' | b'\n' | b'\r') {
                    return Err(invalid(
                        p,
                        "csv.delimiter",
                        format!("{s:?} cannot be a delimiter"),
                    ));
                }
                Delimiter::Fixed(b)
            }
        };
        let quote = match c.quote.as_deref() {
            None => b'"',
            Some(s) => one_byte(p, "csv.quote", s)?,
        };
        if Delimiter::Fixed(quote) == delimiter {
            return Err(invalid(p, "csv.quote", "quote and delimiter must differ"));
        }
        let encoding = match c.encoding.as_deref() {
            None => Encoding::Auto,
            Some(s) => Encoding::parse(s).ok_or_else(|| {
                invalid(p, "csv.encoding", format!("unknown encoding {s:?}; expected auto, utf-8, windows-1252, iso-8859-1 or utf-16"))
            })?,
        };
        let fallback_encoding = match c.fallback_encoding.as_deref() {
            None => Encoding::Windows1252,
            Some(s) => match Encoding::parse(s) {
                Some(e @ (Encoding::Windows1252 | Encoding::Iso8859_1)) => e,
                _ => {
                    return Err(invalid(
                        p,
                        "csv.fallback_encoding",
                        format!("{s:?}: expected windows-1252 or iso-8859-1"),
                    ));
                }
            },
        };
        let decimal = match c.decimal.as_deref() {
            None | Some(".") => b'.',
            Some(",") => b',',
            Some(s) => {
                return Err(invalid(
                    p,
                    "csv.decimal",
                    format!("{s:?}: expected \".\" or \",\""),
                ));
            }
        };
        let thousands = match c.thousands.as_deref() {
            None | Some("") => None,
            Some(s @ ("," | "." | " " | "'")) => Some(s.as_bytes()[0]),
            Some(s) => {
                return Err(invalid(
                    p,
                    "csv.thousands",
                    format!("{s:?}: expected \",\", \".\", \" \", \"'\" or \"\""),
                ));
            }
        };
        if thousands == Some(decimal) {
            return Err(invalid(
                p,
                "csv.thousands",
                "the thousands separator must differ from the decimal separator",
            ));
        }
        let null_values = c.null_values.clone().unwrap_or_else(|| vec![String::new()]);
        let csv = CsvSettings {
            delimiter,
            quote,
            encoding,
            fallback_encoding,
            header: c.header.unwrap_or(true),
            skip_rows: c.skip_rows.unwrap_or(0),
            skip_footer_rows: c.skip_footer_rows.unwrap_or(0),
            decimal,
            thousands,
            null_values: null_values.iter().map(|v| v.trim().to_string()).collect(),
            trim_strings: c.trim_strings.unwrap_or(false),
        };

        let on_error = match raw.on_error.as_deref() {
            None | Some("reject_file") => OnError::RejectFile,
            Some("quarantine_rows") => OnError::QuarantineRows,
            Some(s) => {
                return Err(invalid(
                    p,
                    "on_error",
                    format!("{s:?}: expected reject_file or quarantine_rows"),
                ));
            }
        };
        let max_rejected_ratio = raw.max_rejected_ratio.unwrap_or(0.01);
        if !(0.0..=1.0).contains(&max_rejected_ratio) {
            return Err(invalid(p, "max_rejected_ratio", "must be between 0 and 1"));
        }
        let ignore_extra_columns = match raw.extra_columns.as_deref() {
            None | Some("error") => false,
            Some("ignore") => true,
            Some(s) => {
                return Err(invalid(
                    p,
                    "extra_columns",
                    format!("{s:?}: expected error or ignore"),
                ));
            }
        };

        let o = raw.output.clone().unwrap_or_default();
        let compression = match o.compression.as_deref() {
            None | Some("zstd") => {
                let level = o.zstd_level.unwrap_or(3);
                if !(1..=22).contains(&level) {
                    return Err(invalid(p, "output.zstd_level", "must be 1..=22"));
                }
                Compression::Zstd(level)
            }
            Some("snappy") => {
                if o.zstd_level.is_some() {
                    return Err(invalid(
                        p,
                        "output.zstd_level",
                        "only meaningful with compression = \"zstd\"",
                    ));
                }
                Compression::Snappy
            }
            Some(s) => {
                return Err(invalid(
                    p,
                    "output.compression",
                    format!("{s:?}: expected zstd or snappy"),
                ));
            }
        };
        let target_file_bytes = o.target_file_bytes.unwrap_or(DEFAULT_TARGET_FILE_BYTES);
        let row_group_bytes = o.row_group_bytes.unwrap_or(DEFAULT_ROW_GROUP_BYTES);
        if target_file_bytes < 1024 * 1024 {
            return Err(invalid(
                p,
                "output.target_file_bytes",
                "must be at least 1048576 (1 MiB)",
            ));
        }
        if row_group_bytes < 1024 * 1024 {
            return Err(invalid(
                p,
                "output.row_group_bytes",
                "must be at least 1048576 (1 MiB)",
            ));
        }
        let output = OutputSettings {
            compression,
            target_file_bytes,
            row_group_bytes,
        };

        // columns
        let mut columns = Vec::with_capacity(raw.columns.len());
        let mut seen = HashSet::new();
        for (i, rc) in raw.columns.iter().enumerate() {
            let key = |k: &str| format!("columns[{i}].{k}");
            names::check_identifier(&rc.name)
                .map_err(|e| invalid(p, key("name"), e.to_string()))?;
            if !seen.insert(rc.name.clone()) {
                return Err(invalid(
                    p,
                    key("name"),
                    format!("column {:?} is declared twice", rc.name),
                ));
            }
            let ty = ColumnType::parse(&rc.type_).map_err(|e| invalid(p, key("type"), e))?;
            let source = match (&rc.source, rc.index) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        p,
                        key("source"),
                        "give either source or index, not both",
                    ));
                }
                (Some(s), None) => {
                    let s = s.trim();
                    if s.is_empty() {
                        return Err(invalid(
                            p,
                            key("source"),
                            "must not be empty (use index for unnamed columns)",
                        ));
                    }
                    Source::Header(s.to_string())
                }
                (None, Some(n)) => Source::Index(n),
                (None, None) => Source::ByName,
            };
            if !csv.header && !matches!(source, Source::Index(_)) {
                return Err(invalid(
                    p,
                    key("index"),
                    "csv.header = false: every column needs index = N (0-based)",
                ));
            }
            let formats = match (&rc.formats, ty.is_temporal()) {
                (Some(f), true) if !f.is_empty() => {
                    let mut out = Vec::with_capacity(f.len());
                    for (j, s) in f.iter().enumerate() {
                        let df = DateFormat::compile(s, ty == ColumnType::Timestamp)
                            .map_err(|e| invalid(p, format!("columns[{i}].formats[{j}]"), e))?;
                        out.push(df);
                    }
                    if let Some((a, b)) = crate::datefmt::day_month_conflict(&out) {
                        return Err(invalid(
                            p,
                            key("formats"),
                            format!(
                                "{a:?} and {b:?} differ only by the order of day and month: a value like 03/04/2024 would be read one way silently; keep one"
                            ),
                        ));
                    }
                    out
                }
                (_, true) => {
                    return Err(invalid(
                        p,
                        key("formats"),
                        format!(
                            "a {ty} column needs formats, e.g. [\"%Y-%m-%d\"] or [\"%d/%m/%Y\"]"
                        ),
                    ));
                }
                (Some(_), false) => {
                    return Err(invalid(
                        p,
                        key("formats"),
                        format!("only date and timestamp columns take formats, not {ty}"),
                    ));
                }
                (None, false) => Vec::new(),
            };
            let pii = match rc.pii.as_deref() {
                None => Pii::Keep,
                Some(s) => Pii::parse(s).map_err(|e| invalid(p, key("pii"), e))?,
            };
            match pii {
                Pii::Year if !ty.is_temporal() => {
                    return Err(invalid(
                        p,
                        key("pii"),
                        format!("year applies to date or timestamp columns, not {ty}"),
                    ));
                }
                Pii::Hmac | Pii::Truncate(_) if ty != ColumnType::String => {
                    return Err(invalid(
                        p,
                        key("pii"),
                        format!("{pii} applies to string columns, not {ty}"),
                    ));
                }
                _ => {}
            }
            let is_bool = ty == ColumnType::Boolean;
            if !is_bool && (rc.true_values.is_some() || rc.false_values.is_some()) {
                return Err(invalid(
                    p,
                    key("true_values"),
                    "only boolean columns take true_values/false_values",
                ));
            }
            let lower = |v: &Vec<String>| {
                v.iter()
                    .map(|s| s.trim().to_lowercase())
                    .collect::<Vec<_>>()
            };
            let true_values = rc
                .true_values
                .as_ref()
                .map(lower)
                .unwrap_or_else(|| ["true", "t", "yes", "y", "1"].map(String::from).to_vec());
            let false_values = rc
                .false_values
                .as_ref()
                .map(lower)
                .unwrap_or_else(|| ["false", "f", "no", "n", "0"].map(String::from).to_vec());
            if let Some(v) = true_values.iter().find(|v| false_values.contains(v)) {
                return Err(invalid(
                    p,
                    key("true_values"),
                    format!("{v:?} is both a true and a false value"),
                ));
            }
            let null_values = match &rc.null_values {
                Some(v) => v.iter().map(|s| s.trim().to_string()).collect(),
                None => csv.null_values.clone(),
            };
            columns.push(ColumnSpec {
                name: rc.name.clone(),
                ty,
                source,
                formats,
                null_values,
                pii,
                true_values,
                false_values,
            });
        }

        // partitions
        let mut partition_by = Vec::with_capacity(raw.partition_by.len());
        let mut key_names = HashSet::new();
        for (i, rp) in raw.partition_by.iter().enumerate() {
            let key = |k: &str| format!("partition_by[{i}].{k}");
            let Some(ci) = columns.iter().position(|c| c.name == rp.column) else {
                return Err(invalid(
                    p,
                    key("column"),
                    format!("no declared column named {:?}", rp.column),
                ));
            };
            let col = &columns[ci];
            let transform = match rp.transform.as_deref() {
                None | Some("identity") => Transform::Identity,
                Some("year") => Transform::Year,
                Some("month") => Transform::Month,
                Some("day") => Transform::Day,
                Some(s) => {
                    return Err(invalid(
                        p,
                        key("transform"),
                        format!("{s:?}: expected identity, year, month or day"),
                    ));
                }
            };
            match transform {
                Transform::Identity if col.ty != ColumnType::String => {
                    return Err(invalid(
                        p,
                        key("transform"),
                        format!(
                            "identity partitions need a string column; {:?} is {}",
                            col.name, col.ty
                        ),
                    ));
                }
                Transform::Year | Transform::Month | Transform::Day if !col.ty.is_temporal() => {
                    return Err(invalid(
                        p,
                        key("transform"),
                        format!(
                            "{:?} is {}; year/month/day need a date or timestamp column",
                            col.name, col.ty
                        ),
                    ));
                }
                _ => {}
            }
            if col.pii != Pii::Keep {
                return Err(invalid(
                    p,
                    key("column"),
                    format!(
                        "{:?} has pii = {}: a partition key would expose it in folder names",
                        col.name, col.pii
                    ),
                ));
            }
            let name = match &rp.name {
                Some(n) => n.clone(),
                None => match transform {
                    Transform::Identity => col.name.clone(),
                    Transform::Year => "year".into(),
                    Transform::Month => "month".into(),
                    Transform::Day => "day".into(),
                },
            };
            names::check_identifier(&name).map_err(|e| invalid(p, key("name"), e.to_string()))?;
            if !key_names.insert(name.clone()) {
                return Err(invalid(
                    p,
                    key("name"),
                    format!("partition key {name:?} appears twice"),
                ));
            }
            if transform != Transform::Identity
                && columns.iter().any(|c| c.name == name && c.pii != Pii::Drop)
            {
                return Err(invalid(
                    p,
                    key("name"),
                    format!(
                        "partition key {name:?} has the name of a column; Athena would see it twice (set name = \"...\")"
                    ),
                ));
            }
            partition_by.push(PartitionSpec {
                column: ci,
                transform,
                name,
            });
        }
        if !columns.is_empty()
            && columns.iter().enumerate().all(|(i, c)| {
                c.pii == Pii::Drop
                    || partition_by
                        .iter()
                        .any(|p| p.column == i && p.transform == Transform::Identity)
            })
        {
            return Err(invalid(
                p,
                "columns",
                "no column would be left in the Parquet body",
            ));
        }

        Ok(Contract {
            name: raw.name,
            domain: raw.domain,
            inbox: raw.inbox,
            csv,
            on_error,
            max_rejected_ratio,
            ignore_extra_columns,
            output,
            partition_by,
            columns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Contract, ContractError> {
        Contract::from_toml(s, Path::new("t.toml"))
    }

    const BASE: &str = r#"
name = "stays"
domain = "hospital_activity"
columns = [
  { name = "id", type = "bigint" },
  { name = "adm", type = "date", formats = ["%d/%m/%Y", "%Y-%m-%d"] },
  { name = "cost", type = "decimal(12,2)" },
  { name = "pid", type = "string", pii = "hmac" },
]
"#;

    #[test]
    fn valid_contract_parses_with_defaults() {
        let c = parse(BASE).unwrap();
        assert_eq!(c.columns.len(), 4);
        assert_eq!(
            c.columns[2].ty,
            ColumnType::Decimal {
                precision: 12,
                scale: 2
            }
        );
        assert_eq!(c.csv.delimiter, Delimiter::Fixed(b','));
        assert_eq!(c.csv.encoding, Encoding::Auto);
        assert_eq!(c.on_error, OnError::RejectFile);
        assert_eq!(c.output.compression, Compression::Zstd(3));
        assert!(c.needs_pseudonym_key());
    }

    fn err(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_is_refused_with_its_name() {
        let e = err(&format!("{BASE}\nbogus = 1\n"));
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn errors_name_product_and_key() {
        let e = err(&BASE.replace("decimal(12,2)", "decimal(40,2)"));
        assert!(
            e.contains("\"stays\"") && e.contains("columns[2].type"),
            "{e}"
        );
        let e = err(&BASE.replace("\"bigint\"", "\"long\""));
        assert!(e.contains("columns[0].type") && e.contains("long"), "{e}");
    }

    #[test]
    fn day_month_swapped_formats_are_refused() {
        let e = err(&BASE.replace("\"%Y-%m-%d\"", "\"%m/%d/%Y\""));
        assert!(
            e.contains("columns[1].formats") && e.contains("order of day and month"),
            "{e}"
        );
    }

    #[test]
    fn date_without_formats_is_refused() {
        let e = err(&BASE.replace(", formats = [\"%d/%m/%Y\", \"%Y-%m-%d\"]", ""));
        assert!(e.contains("columns[1].formats"), "{e}");
    }

    #[test]
    fn pii_rules() {
        let e = err(&BASE.replace("pii = \"hmac\"", "pii = \"truncate:0\""));
        assert!(e.contains("columns[3].pii"), "{e}");
        let e = err(&BASE.replace("type = \"bigint\"", "type = \"bigint\", pii = \"hmac\""));
        assert!(e.contains("columns[0].pii") && e.contains("string"), "{e}");
        let c = parse(&BASE.replace(
            "formats = [\"%d/%m/%Y\", \"%Y-%m-%d\"]",
            "formats = [\"%d/%m/%Y\"], pii = \"year\"",
        ))
        .unwrap();
        assert_eq!(c.columns[1].output_type(), ColumnType::Int);
    }

    #[test]
    fn partitions_validate() {
        let ok = format!(
            "{BASE}\npartition_by = [{{ column = \"adm\", transform = \"year\" }}, {{ column = \"adm\", transform = \"month\" }}]\n"
        );
        let c = parse(&ok).unwrap();
        assert_eq!(c.partition_by[0].name, "year");
        assert_eq!(c.partition_by[1].transform, Transform::Month);
        let e = err(&format!(
            "{BASE}\npartition_by = [{{ column = \"cost\", transform = \"year\" }}]\n"
        ));
        assert!(e.contains("partition_by[0].transform"), "{e}");
        let e = err(&format!(
            "{BASE}\npartition_by = [{{ column = \"nope\" }}]\n"
        ));
        assert!(e.contains("partition_by[0].column"), "{e}");
        let e = err(&format!(
            "{BASE}\npartition_by = [{{ column = \"pid\" }}]\n"
        ));
        assert!(e.contains("pii"), "{e}");
        let e = err(&format!(
            "{BASE}\npartition_by = [{{ column = \"adm\", transform = \"year\" }}, {{ column = \"adm\", transform = \"year\" }}]\n"
        ));
        assert!(e.contains("appears twice"), "{e}");
    }

    #[test]
    fn csv_options_validate() {
        let e = err(&format!("{BASE}\n[csv]\ndelimiter = \";;\"\n"));
        assert!(e.contains("csv.delimiter"), "{e}");
        let e = err(&format!("{BASE}\n[csv]\nencoding = \"ebcdic\"\n"));
        assert!(e.contains("csv.encoding"), "{e}");
        let e = err(&format!(
            "{BASE}\n[csv]\ndecimal = \",\"\nthousands = \",\"\n"
        ));
        assert!(e.contains("csv.thousands"), "{e}");
        let c = parse(&format!(
            "{BASE}\n[csv]\ndelimiter = \"\\t\"\nencoding = \"latin-1\"\n"
        ))
        .unwrap();
        assert_eq!(c.csv.delimiter, Delimiter::Fixed(b'\t'));
        assert_eq!(c.csv.encoding, Encoding::Iso8859_1);
    }

    #[test]
    fn headerless_needs_index() {
        let e = err(&format!("{BASE}\n[csv]\nheader = false\n"));
        assert!(e.contains("columns[0].index"), "{e}");
    }

    #[test]
    fn duplicate_and_bad_names() {
        let e = err(&BASE.replace("name = \"cost\"", "name = \"id\""));
        assert!(e.contains("declared twice"), "{e}");
        let e = err(&BASE.replace("name = \"cost\"", "name = \"Cost\""));
        assert!(e.contains("columns[2].name"), "{e}");
        let e = err(&BASE.replace("name = \"stays\"", "name = \"2stays\""));
        assert!(e.contains("key `name`"), "{e}");
    }
}
