//! Discovery: read every row of an export and propose a contract for a person to pin.
//!
//! Owns type inference (every row, never a sample), the rule that codes with leading zeros stay
//! strings, the refusal of day/month-ambiguous dates (with the offending values), header
//! normalisation with collision errors, and rendering the proposal as contract TOML. It writes
//! no Parquet.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use csv::ByteRecord;
use lakemesh_shared::names;

use crate::contract::CsvSettings;
use crate::datefmt::DateFormat;
use crate::decode::{self, DecodeError};
use crate::parse::{self, Numeric};

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{file}: {message}")]
    Read { file: String, message: String },
    #[error("{file}: {source}")]
    Names {
        file: String,
        #[source]
        source: names::NameError,
    },
    #[error("{file}: cannot infer a safe contract:\n{}", .problems.join("\n"))]
    Refused { file: String, problems: Vec<String> },
}

const DATE_FORMATS: [&str; 7] = [
    "%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%Y%m%d", "%d.%m.%Y", "%d-%m-%Y", "%Y/%m/%d",
];
const TS_FORMATS: [&str; 8] = [
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
];

/// What was learnt about one column.
#[derive(Debug, Clone)]
pub struct InferredColumn {
    pub name: String,
    pub header: String,
    pub index: usize,
    pub ty: String,
    pub formats: Vec<String>,
    pub nulls: u64,
    pub non_nulls: u64,
    pub note: Option<String>,
}

/// A proposed contract.
#[derive(Debug, Clone)]
pub struct Inferred {
    pub rows: u64,
    pub delimiter: u8,
    pub encoding: &'static str,
    pub decimal: u8,
    pub columns: Vec<InferredColumn>,
}

#[derive(Default)]
struct Stats {
    nulls: u64,
    non_nulls: u64,
    int_ok: bool,
    leading_zero: Option<String>,
    min: i64,
    max: i64,
    dec_dot: bool,
    dec_comma: bool,
    int_digits: usize,
    frac_digits: usize,
    bool_ok: bool,
    /// date/timestamp format masks seen: mask → (count, examples)
    masks: BTreeMap<u32, (u64, Vec<String>)>,
    temporal_ok: bool,
}

impl Stats {
    fn new() -> Self {
        Self {
            int_ok: true,
            dec_dot: true,
            dec_comma: true,
            bool_ok: true,
            temporal_ok: true,
            min: i64::MAX,
            max: i64::MIN,
            ..Default::default()
        }
    }
}

fn all_formats() -> Vec<DateFormat> {
    DATE_FORMATS
        .iter()
        .map(|f| DateFormat::compile(f, true))
        .chain(TS_FORMATS.iter().map(|f| DateFormat::compile(f, true)))
        .map(|r| r.unwrap_or_else(|e| unreachable!("built-in format: {e}")))
        .collect()
}

fn decimal_shape(t: &[u8], sep: u8) -> Option<(usize, usize)> {
    let body = match t.first() {
        Some(b'-' | b'+') => &t[1..],
        _ => t,
    };
    let (int, frac) = match body.iter().position(|&c| c == sep) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &body[body.len()..]),
    };
    if int.is_empty() && frac.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let sig = int.iter().skip_while(|&&c| c == b'0').count();
    // The scale as written (money keeps its 2 decimals), unless the export pads with long runs
    // of zeros (Oracle NUMBER dumps such as .0818000000000000000000000): then the significant ones.
    let frac_len = if frac.len() <= 9 {
        frac.len()
    } else {
        frac.iter().rposition(|&c| c != b'0').map_or(0, |i| i + 1)
    };
    Some((sig, frac_len))
}

/// Reads all of `path` with `csv` (delimiter may be auto) and proposes column types.
pub fn infer_file(path: &Path, csv: &CsvSettings) -> Result<Inferred, InferError> {
    let file = path.display().to_string();
    let mut decoded = decode::open(path, csv)?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(decoded.delimiter)
        .quote(csv.quote)
        .buffer_capacity(1 << 20)
        .from_reader(&mut decoded.reader);
    let mut rec = ByteRecord::new();
    let read_err = |e: csv::Error| InferError::Read {
        file: file.clone(),
        message: e.to_string(),
    };
    let mut first = None;
    while rdr.read_byte_record(&mut rec).map_err(read_err)? {
        if !(rec.len() == 1 && parse::trim(&rec[0]).is_empty()) {
            first = Some(rec.clone());
            break;
        }
    }
    let Some(first) = first else {
        return Err(InferError::Read {
            file,
            message: "the file is empty".into(),
        });
    };
    let width = first.len();
    let (headers, names): (Vec<String>, Vec<String>) = if csv.header {
        let hs: Vec<String> = first
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_string())
            .collect();
        let ns = names::normalise_headers(hs.iter().map(String::as_str)).map_err(|source| {
            InferError::Names {
                file: file.clone(),
                source,
            }
        })?;
        (hs, ns)
    } else {
        (
            (0..width).map(|i| format!("#{i}")).collect(),
            (0..width).map(|i| format!("col_{}", i + 1)).collect(),
        )
    };
    let formats = all_formats();
    let mut stats: Vec<Stats> = (0..width).map(|_| Stats::new()).collect();
    let mut rows = 0u64;
    let mut problems = Vec::new();
    let process =
        |r: &ByteRecord, line: u64, problems: &mut Vec<String>, stats: &mut Vec<Stats>| {
            if r.len() != width {
                if problems.len() < 20 {
                    problems.push(format!(
                        "line {line}: expected {width} fields, found {}",
                        r.len()
                    ));
                }
                return;
            }
            for (i, raw) in r.iter().enumerate() {
                let s = &mut stats[i];
                let t = parse::trim(raw);
                if t.is_empty() {
                    s.nulls += 1;
                    continue;
                }
                s.non_nulls += 1;
                if t.len() > 1
                    && t[0] == b'0'
                    && t.iter().all(u8::is_ascii_digit)
                    && s.leading_zero.is_none()
                {
                    s.leading_zero = Some(String::from_utf8_lossy(t).into_owned());
                }
                if s.int_ok {
                    match parse::parse_int(
                        t,
                        Numeric {
                            decimal: b'.',
                            thousands: None,
                        },
                        i64::MIN,
                        i64::MAX,
                        &mut Vec::new(),
                    ) {
                        Ok(v) => {
                            s.min = s.min.min(v);
                            s.max = s.max.max(v);
                        }
                        Err(_) => s.int_ok = false,
                    }
                }
                for (sep, ok) in [(b'.', &mut s.dec_dot), (b',', &mut s.dec_comma)] {
                    if *ok {
                        match decimal_shape(t, sep) {
                            Some((a, b)) => {
                                s.int_digits = s.int_digits.max(a);
                                s.frac_digits = s.frac_digits.max(b);
                            }
                            None => *ok = false,
                        }
                    }
                }
                if s.bool_ok {
                    s.bool_ok = matches!(t.to_ascii_lowercase().as_slice(), b"true" | b"false");
                }
                if s.temporal_ok {
                    let mut mask = 0u32;
                    for (k, f) in formats.iter().enumerate() {
                        if f.parse_timestamp_millis(t).is_some() {
                            mask |= 1 << k;
                        }
                    }
                    if mask == 0 {
                        s.temporal_ok = false;
                        s.masks.clear();
                    } else {
                        let e = s.masks.entry(mask).or_insert((0, Vec::new()));
                        e.0 += 1;
                        if e.1.len() < 5 {
                            e.1.push(String::from_utf8_lossy(t).into_owned());
                        }
                    }
                }
            }
        };
    if !csv.header {
        rows += 1;
        process(&first, 1 + decoded.lines_skipped, &mut problems, &mut stats);
    }
    while rdr.read_byte_record(&mut rec).map_err(read_err)? {
        if rec.len() == 1 && parse::trim(&rec[0]).is_empty() {
            continue;
        }
        rows += 1;
        let line = rec.position().map_or(0, |p| p.line()) + decoded.lines_skipped;
        process(&rec, line, &mut problems, &mut stats);
    }
    drop(rdr);

    // Product-wide decimal separator: comma only if some column needs it and none needs a dot.
    let needs = |s: &Stats, comma: bool| {
        !s.int_ok
            && s.non_nulls > 0
            && s.leading_zero.is_none()
            && if comma {
                s.dec_comma && !s.dec_dot
            } else {
                s.dec_dot && !s.dec_comma
            }
    };
    let comma = stats.iter().any(|s| needs(s, true)) && !stats.iter().any(|s| needs(s, false));
    let decimal = if comma { b',' } else { csv.decimal };

    let mut columns = Vec::with_capacity(width);
    for (i, s) in stats.iter().enumerate() {
        let mut note = None;
        let mut fmts = Vec::new();
        let ty = if s.non_nulls == 0 {
            note = Some("always empty: typed string; declare the real type if you know it".into());
            "string".to_string()
        } else if s.bool_ok {
            "boolean".into()
        } else if let Some(z) = &s.leading_zero
            && (s.int_ok
                || s.dec_dot
                || s.dec_comma
                || s.temporal_ok && !s.masks.keys().all(|m| m & (1 << 3) != 0))
        {
            note = Some(format!(
                "kept as string: codes with leading zeros such as {z:?}"
            ));
            "string".into()
        } else if s.temporal_ok
            && !s.masks.is_empty()
            && (!s.int_ok || s.masks.keys().all(|m| m & (1 << 3) != 0))
        {
            match choose_formats(&s.masks, &formats) {
                Ok(chosen) => {
                    let is_ts = chosen.iter().any(|&k| k >= DATE_FORMATS.len());
                    fmts = chosen
                        .iter()
                        .map(|&k| formats[k].as_str().to_string())
                        .collect();
                    if is_ts {
                        "timestamp".into()
                    } else {
                        "date".into()
                    }
                }
                Err(msg) => {
                    problems.push(format!("column {:?} ({:?}): {msg}", names[i], headers[i]));
                    "string".into()
                }
            }
        } else if s.int_ok {
            if s.min >= i32::MIN as i64 && s.max <= i32::MAX as i64 {
                "int".into()
            } else {
                "bigint".into()
            }
        } else if (decimal == b',' && s.dec_comma) || (decimal == b'.' && s.dec_dot) {
            let scale = s.frac_digits.max(1);
            let precision = (s.int_digits + scale).max(scale + 1);
            if precision > 38 {
                "double".into()
            } else {
                // Room for growth: at least 6 integer digits beyond what was seen, within 38.
                let p = (precision + 4).clamp(precision, 38);
                format!("decimal({p},{scale})")
            }
        } else {
            "string".into()
        };
        columns.push(InferredColumn {
            name: names[i].clone(),
            header: headers[i].clone(),
            index: i,
            ty,
            formats: fmts,
            nulls: s.nulls,
            non_nulls: s.non_nulls,
            note,
        });
    }
    if !problems.is_empty() {
        return Err(InferError::Refused { file, problems });
    }
    Ok(Inferred {
        rows,
        delimiter: decoded.delimiter,
        encoding: decoded.encoding.as_str(),
        decimal,
        columns,
    })
}

/// Picks the smallest set of formats that reads every value, refusing day/month ambiguity.
fn choose_formats(
    masks: &BTreeMap<u32, (u64, Vec<String>)>,
    formats: &[DateFormat],
) -> Result<Vec<usize>, String> {
    let mut chosen: u32 = 0;
    for &m in masks.keys() {
        if m.count_ones() == 1 {
            chosen |= m;
        }
    }
    let swapped = |a: usize, b: usize| {
        crate::datefmt::day_month_conflict(&[formats[a].clone(), formats[b].clone()]).is_some()
    };
    for (&m, (_, examples)) in masks {
        if m & chosen != 0 {
            continue;
        }
        let bits: Vec<usize> = (0..formats.len()).filter(|k| m & (1 << k) != 0).collect();
        if bits
            .iter()
            .any(|&a| bits.iter().any(|&b| a < b && swapped(a, b)))
        {
            return Err(format!(
                "day and month cannot be told apart in values such as {}; declare the column's formats yourself",
                examples
                    .iter()
                    .map(|e| format!("{e:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        chosen |= 1 << bits[0];
    }
    let list: Vec<usize> = (0..formats.len())
        .filter(|k| chosen & (1 << k) != 0)
        .collect();
    for &a in &list {
        for &b in &list {
            if a < b && swapped(a, b) {
                let ex: Vec<String> = masks
                    .iter()
                    .filter(|(m, _)| **m == 1 << a || **m == 1 << b)
                    .flat_map(|(_, (_, e))| e.iter().take(2).cloned())
                    .collect();
                return Err(format!(
                    "mixes day-first and month-first dates ({}); the export is inconsistent",
                    ex.iter()
                        .map(|e| format!("{e:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    Ok(list)
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Renders the proposal as a standalone contract.
pub fn render_contract(
    inf: &Inferred,
    name: &str,
    domain: &str,
    csv: &CsvSettings,
    source_file: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Contract proposed by `lakemesh-agent infer` from {source_file}: every one of its {} rows was read.",
        inf.rows
    );
    let _ = writeln!(
        out,
        "# Review each type, add pii = \"drop\" | \"hmac\" | \"year\" | \"truncate:N\" for personal data, then pin it."
    );
    let _ = writeln!(out, "name = {}", toml_str(name));
    let _ = writeln!(out, "domain = {}", toml_str(domain));
    let _ = writeln!(out);
    let _ = writeln!(out, "[csv]");
    let d = if inf.delimiter == b'\t' {
        "\\t".to_string()
    } else {
        (inf.delimiter as char).to_string()
    };
    let _ = writeln!(out, "delimiter = {}", toml_str(&d));
    let _ = writeln!(out, "encoding = {}", toml_str(inf.encoding));
    let _ = writeln!(out, "header = {}", csv.header);
    if csv.skip_rows > 0 {
        let _ = writeln!(out, "skip_rows = {}", csv.skip_rows);
    }
    let _ = writeln!(
        out,
        "decimal = {}",
        toml_str(&(inf.decimal as char).to_string())
    );
    let _ = writeln!(out);
    for c in &inf.columns {
        if let Some(n) = &c.note {
            let _ = writeln!(out, "# {}: {n}", c.name);
        }
        let _ = writeln!(out, "[[columns]]");
        let _ = writeln!(out, "name = {}", toml_str(&c.name));
        let _ = writeln!(out, "type = {}", toml_str(&c.ty));
        if !csv.header {
            let _ = writeln!(out, "index = {}", c.index);
        } else if names::normalise_header(&c.header).as_deref() != Some(c.header.as_str()) {
            let _ = writeln!(out, "source = {}", toml_str(&c.header));
        }
        if !c.formats.is_empty() {
            let f: Vec<String> = c.formats.iter().map(|f| toml_str(f)).collect();
            let _ = writeln!(out, "formats = [{}]", f.join(", "));
        }
        let _ = writeln!(out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Contract, Delimiter, Encoding};

    fn csv() -> CsvSettings {
        CsvSettings {
            delimiter: Delimiter::Auto,
            quote: b'"',
            encoding: Encoding::Auto,
            fallback_encoding: Encoding::Windows1252,
            header: true,
            skip_rows: 0,
            skip_footer_rows: 0,
            decimal: b'.',
            thousands: None,
            null_values: vec![String::new()],
            trim_strings: false,
        }
    }

    fn infer(text: &str) -> Result<Inferred, InferError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, text).unwrap();
        infer_file(&p, &csv())
    }

    fn ty<'a>(i: &'a Inferred, name: &str) -> &'a InferredColumn {
        i.columns.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn every_row_is_read_and_late_codes_keep_strings() {
        let mut text = String::from("dep;n;cost;when\n");
        for k in 1..=5000 {
            text.push_str(&format!("{};{k};{k}.5;2020-01-01\n", 10 + k % 80));
        }
        text.push_str("2A;1;1.25;2020-02-03\n01;2;3;2020-02-04\n");
        let i = infer(&text).unwrap();
        assert_eq!(i.rows, 5002);
        assert_eq!(ty(&i, "dep").ty, "string");
        assert_eq!(ty(&i, "n").ty, "int");
        assert!(
            ty(&i, "cost").ty.starts_with("decimal("),
            "{}",
            ty(&i, "cost").ty
        );
        assert_eq!(ty(&i, "when").ty, "date");
        assert_eq!(ty(&i, "when").formats, vec!["%Y-%m-%d"]);
    }

    #[test]
    fn leading_zero_codes_are_strings() {
        let i = infer("finess,cp\n010000024,01440\n130000011,69003\n").unwrap();
        assert_eq!(ty(&i, "finess").ty, "string");
        assert_eq!(ty(&i, "cp").ty, "string");
    }

    #[test]
    fn ambiguous_dates_are_refused_with_values() {
        let e = infer("d\n03/04/2024\n05/06/2024\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"03/04/2024\"") && e.contains("day and month"),
            "{e}"
        );
        let i = infer("d\n03/04/2024\n25/06/2024\n").unwrap();
        assert_eq!(ty(&i, "d").formats, vec!["%d/%m/%Y"]);
        let i = infer("d\n03/04/2024\n06/25/2024\n").unwrap();
        assert_eq!(ty(&i, "d").formats, vec!["%m/%d/%Y"]);
        let e = infer("d\n13/04/2024\n06/25/2024\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mixes day-first and month-first"), "{e}");
    }

    #[test]
    fn mixed_iso_and_day_first_dates() {
        let i = infer("jour;x\n2020-06-26;1\n27/06/2020;2\n").unwrap();
        assert_eq!(ty(&i, "jour").formats, vec!["%Y-%m-%d", "%d/%m/%Y"]);
    }

    #[test]
    fn decimal_comma_and_timestamps_and_booleans() {
        let i = infer("taux;t;b\n8,33;16/01/2024 17:12:03;TRUE\n12,5;09/01/2024 10:00:00;false\n")
            .unwrap();
        assert_eq!(i.decimal, b',');
        assert_eq!(ty(&i, "taux").ty, "decimal(8,2)");
        let money = infer("cost;x\n1234,50;1\n99,00;2\n").unwrap();
        assert_eq!(
            ty(&money, "cost").ty,
            "decimal(10,2)",
            "money keeps its written scale"
        );
        assert_eq!(ty(&i, "t").ty, "timestamp");
        assert_eq!(ty(&i, "t").formats, vec!["%d/%m/%Y %H:%M:%S"]);
        assert_eq!(ty(&i, "b").ty, "boolean");
    }

    #[test]
    fn header_collisions_name_both() {
        let e = infer("Code Activité,code_activite\n1,2\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Code Activité") && e.contains("code_activite"),
            "{e}"
        );
    }

    #[test]
    fn rendered_contract_parses_and_keeps_sources() {
        let i = infer("N° séjour;Date d'entrée;dep\n1;2020-01-01;01\n").unwrap();
        let text = render_contract(&i, "stays", "hospital_activity", &csv(), "x.csv");
        let c = Contract::from_toml(&text, Path::new("x.toml")).unwrap();
        assert_eq!(c.columns.len(), 3);
        assert_eq!(c.columns[0].name, "n_sejour");
        assert!(text.contains("source = \"N° séjour\""), "{text}");
    }
}
