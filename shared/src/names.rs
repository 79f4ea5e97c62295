//! Name rules for what ends up in the Glue catalog and in S3 keys.
//!
//! Owns:
//! - the identifier rule for table, column and domain names (`^[a-z][a-z0-9_]*$`, at most
//!   [`MAX_IDENTIFIER_BYTES`]), which Athena and Glue accept without quoting;
//! - the normalisation of source headers into such identifiers (lowercase, accents transliterated,
//!   other characters to `_`, no leading digit) and the detection of headers that collide after it;
//! - Athena's reserved DDL keywords;
//! - Hive's escaping of partition values in paths (`year=2024`, `dep=2A`, `label=a%2Fb`);
//! - the rules for producer ids ([`check_producer_id`]), S3 bucket names ([`check_bucket_name`])
//!   and key prefixes ([`check_key_prefix`]), which configuration files and announcements both
//!   carry, and for escaped partition values in keys ([`check_escaped_partition_value`]).
//!
//! Does not own: which partition values a row gets (the agent's `partition` step), how keys are laid
//! out under a bucket, or quoting identifiers inside SQL statements (whoever writes the statement).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Longest table, column or database name Glue accepts, in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 255;

/// Directory name Hive, Glue and Athena use for a partition whose value is null or empty.
pub const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Why a name cannot be used, or why a header row cannot be turned into column names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("name is empty")]
    Empty,
    /// The name is longer than [`MAX_IDENTIFIER_BYTES`].
    #[error("name {name:?} is {len} bytes long; at most {MAX_IDENTIFIER_BYTES} are allowed")]
    TooLong { name: String, len: usize },
    /// The first character is not `a`..=`z`.
    #[error("name {name:?} must start with a letter a-z")]
    BadStart { name: String },
    /// A character other than the first is not `a`..=`z`, `0`..=`9` or `_`.
    #[error(
        "name {name:?} contains {ch:?} at character {position}; only a-z, 0-9 and _ are allowed"
    )]
    BadChar {
        name: String,
        ch: char,
        /// 1-based, counted in characters.
        position: usize,
    },
    /// A header has no letter or digit to make a column name from.
    #[error("header in column {position} ({header:?}) has no letter or digit to make a name from")]
    EmptyHeader {
        header: String,
        /// 1-based column position in the header row.
        position: usize,
    },
    /// Two headers normalise to the same column name.
    #[error(
        "headers {first:?} (column {first_position}) and {second:?} (column {second_position}) \
         both normalise to {name:?}"
    )]
    HeaderCollision {
        name: String,
        first: String,
        first_position: usize,
        second: String,
        second_position: usize,
    },
}

/// Normalise a source header to an Athena-safe identifier.
///
/// The header is trimmed and lowercased; Latin letters with accents are transliterated (`é`→`e`,
/// `ç`→`c`, `œ`→`oe`, `ß`→`ss`, `ø`→`o`, `þ`→`th`, ...), as are `µ`→`u` and `¹²³`→`123` so that
/// units keep their meaning (`Dose (µg)` → `dose_ug`, `Surface (m²)` → `surface_m2`). Combining
/// accents, soft hyphens, zero-width characters and byte-order marks are dropped. Every run of
/// other characters (spaces, punctuation, `_`, other scripts) becomes a single `_`, with none
/// leading or trailing. A name starting with a digit gets a `c_` prefix (`2007/Jan` →
/// `c_2007_jan`). The result is cut to [`MAX_IDENTIFIER_BYTES`].
///
/// Returns `None` when nothing is left (`""`, `"   "`, `"___"`, a header in a non-Latin script).
/// A returned name always passes [`is_safe_identifier`], and normalising it again returns it
/// unchanged. It may be a reserved word (see [`is_reserved_word`]): Glue accepts those and DDL
/// quotes them.
pub fn normalise_header(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut separator = false;
    let mut buf = [0u8; 4];
    for c in raw.trim().chars().flat_map(char::to_lowercase) {
        if is_invisible(c) {
            continue;
        }
        let piece: &str = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c.encode_utf8(&mut buf)
        } else if let Some(ascii) = transliterate(c) {
            ascii
        } else {
            separator = true;
            continue;
        };
        // A separator is written only between two pieces, so none leads or trails.
        if separator && !out.is_empty() {
            out.push('_');
        }
        separator = false;
        out.push_str(piece);
    }
    if out.is_empty() {
        return None;
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "c_");
    }
    if out.len() > MAX_IDENTIFIER_BYTES {
        // Every piece pushed above is ASCII, so any byte index is a char boundary.
        out.truncate(MAX_IDENTIFIER_BYTES);
        let kept = out.trim_end_matches('_').len();
        out.truncate(kept);
    }
    Some(out)
}

/// Normalise every header of a header row with [`normalise_header`].
///
/// Fails on the first header that normalises to nothing ([`NameError::EmptyHeader`]) or that
/// normalises to the same name as an earlier one ([`NameError::HeaderCollision`]): two source
/// columns are never merged silently. Positions in errors are 1-based.
pub fn normalise_headers<'a>(
    headers: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, NameError> {
    let mut names = Vec::new();
    let mut seen: HashMap<String, (&'a str, usize)> = HashMap::new();
    for (index, header) in headers.into_iter().enumerate() {
        let position = index + 1;
        let name = normalise_header(header).ok_or_else(|| NameError::EmptyHeader {
            header: header.to_owned(),
            position,
        })?;
        match seen.entry(name.clone()) {
            Entry::Occupied(earlier) => {
                let (first, first_position) = *earlier.get();
                return Err(NameError::HeaderCollision {
                    name,
                    first: first.to_owned(),
                    first_position,
                    second: header.to_owned(),
                    second_position: position,
                });
            }
            Entry::Vacant(slot) => {
                slot.insert((header, position));
            }
        }
        names.push(name);
    }
    Ok(names)
}

/// True if `name` is already a valid identifier: `^[a-z][a-z0-9_]*$` and at most
/// [`MAX_IDENTIFIER_BYTES`] bytes.
pub fn is_safe_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_IDENTIFIER_BYTES
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Validate a table, column or domain name given by a person.
///
/// The rules, checked in this order: not empty, at most [`MAX_IDENTIFIER_BYTES`] bytes, starts
/// with `a`..=`z`, then only `a`..=`z`, `0`..=`9` and `_`. The error names the rule and shows the
/// value. Reserved words are accepted (see [`is_reserved_word`]).
pub fn check_identifier(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(NameError::TooLong {
            name: name.to_owned(),
            len: name.len(),
        });
    }
    let mut chars = name.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
        return Err(NameError::BadStart {
            name: name.to_owned(),
        });
    }
    let bad = chars
        .enumerate()
        .find(|&(_, c)| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    if let Some((index, ch)) = bad {
        return Err(NameError::BadChar {
            name: name.to_owned(),
            ch,
            // `index` counts from the second character.
            position: index + 2,
        });
    }
    Ok(())
}

/// Longest producer id, in bytes.
pub const MAX_PRODUCER_ID_BYTES: usize = 64;

/// Validate a producer id (`chu-lyon`): 1 to [`MAX_PRODUCER_ID_BYTES`] characters among `a-z`,
/// `0-9`, `-` and `_`. Returns the reason when it is not one, showing the value.
pub fn check_producer_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_PRODUCER_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?}: use 1-{MAX_PRODUCER_ID_BYTES} characters a-z 0-9 - _"
        ))
    }
}

/// Validate an S3 bucket name by the general-purpose bucket rules: 3 to 63 characters among
/// `a-z`, `0-9`, `.` and `-`, starting and ending with a letter or digit, no `..`, not shaped like
/// an IP address, none of the reserved prefixes (`xn--`, `sthree-`, `amzn-s3-demo-`) or suffixes
/// (`-s3alias`, `--ol-s3`, `.mrap`, `--x-s3`, `--table-s3`). Returns the reason when it is not one.
pub fn check_bucket_name(name: &str) -> Result<(), String> {
    let fail = |why: &str| Err(format!("{name:?} is not a valid S3 bucket name: {why}"));
    if !(3..=63).contains(&name.len()) {
        return fail("use 3 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return fail("only a-z, 0-9, . and - are allowed");
    }
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !alnum(name.bytes().next()) || !alnum(name.bytes().last()) {
        return fail("it must start and end with a letter or digit");
    }
    if name.contains("..") {
        return fail("no two adjacent periods");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("it must not be formatted as an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return fail(&format!("the prefix {prefix:?} is reserved"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return fail(&format!("the suffix {suffix:?} is reserved"));
        }
    }
    Ok(())
}

/// True if `name` (in any case) is one of Athena's reserved DDL keywords, which a `CREATE TABLE`
/// or `ALTER TABLE ... PARTITION` statement must quote in backticks (`date`, `user`, `partition`).
///
/// The list is the one in the Athena user guide, "Reserved keywords to escape in DDL statements".
/// Athena's list for `SELECT` statements is different and not covered here.
pub fn is_reserved_word(name: &str) -> bool {
    ATHENA_DDL_RESERVED_WORDS
        .binary_search_by(|word| {
            word.bytes()
                .cmp(name.bytes().map(|b| b.to_ascii_uppercase()))
        })
        .is_ok()
}

/// Escape a partition value for a Hive path segment (`column=VALUE`), as Hive's
/// `FileUtils.escapePathName` does.
///
/// Control characters 0x00..=0x1F, DEL (0x7F) and `"` `#` `%` `'` `*` `/` `:` `=` `?` `\` `{` `[`
/// `]` `^` become `%XX` (uppercase hex); everything else, including spaces and non-ASCII
/// characters, is kept as is. The empty string becomes [`HIVE_DEFAULT_PARTITION`], the directory
/// Hive also uses for null.
pub fn escape_partition_value(v: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if v.is_empty() {
        return HIVE_DEFAULT_PARTITION.to_owned();
    }
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if hive_escapes(c) {
            // `hive_escapes` is only true for ASCII, so the code point fits in one byte.
            let byte = c as u32;
            out.push('%');
            out.push(char::from(HEX[(byte >> 4) as usize & 0xF]));
            out.push(char::from(HEX[byte as usize & 0xF]));
        } else {
            out.push(c);
        }
    }
    out
}

/// Validate a partition value as it appears in a path segment, i.e. already escaped by
/// [`escape_partition_value`]: not empty, every character one Hive leaves as is, or a `%XX`
/// escape (uppercase hex). [`HIVE_DEFAULT_PARTITION`] is such a value. Returns the reason when
/// it is not one.
pub fn check_escaped_partition_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err(
            "empty partition value (a null or empty value is __HIVE_DEFAULT_PARTITION__)".into(),
        );
    }
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let hex: String = chars.by_ref().take(2).collect();
            if hex.len() != 2
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            {
                return Err(format!(
                    "{v:?}: '%' must start an escape of two uppercase hex digits"
                ));
            }
        } else if hive_escapes(c) {
            return Err(format!("{v:?}: {c:?} must be escaped as %{:02X}", c as u32));
        }
    }
    Ok(())
}

/// Validate an S3 key prefix given in configuration (`products`, `exports/2026`): `/`-separated
/// segments, each not empty, not `.` or `..`, of S3's "safe" characters only (`A-Z a-z 0-9` and
/// `! - _ . * ' ( )`); at most 512 bytes. The empty prefix (keys at the bucket's root) is valid.
/// Leading and trailing `/` are the caller's to trim. Returns the reason when it is not one.
pub fn check_key_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    if prefix.len() > 512 {
        return Err(format!(
            "prefix is {} bytes; at most 512 are allowed",
            prefix.len()
        ));
    }
    for segment in prefix.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!("{prefix:?}: empty, . or .. path segment"));
        }
        if let Some(c) = segment
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(c)))
        {
            return Err(format!(
                "{prefix:?} contains {c:?}; use A-Z a-z 0-9 and ! - _ . * ' ( ) between slashes"
            ));
        }
    }
    Ok(())
}

/// The characters Hive's `FileUtils.charToEscape` holds (on non-Windows hosts). Hive's static
/// initialiser sets every code point below `' '`, NUL included.
fn hive_escapes(c: char) -> bool {
    matches!(
        c,
        '\u{00}'
            ..='\u{1F}'
                | '"'
                | '#'
                | '%'
                | '\''
                | '*'
                | '/'
                | ':'
                | '='
                | '?'
                | '\\'
                | '\u{7F}'
                | '{'
                | '['
                | ']'
                | '^'
    )
}

/// Characters that carry no letter and must not split a word either: combining accents (a header
/// in decomposed form, `e` + U+0301), soft hyphen, zero-width space/joiners, word joiner and BOM.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}' | '\u{00AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'
    )
}

/// ASCII spelling of a lowercase letter of Latin-1 and Latin Extended-A (plus Romanian `ș` `ț`),
/// and of the few symbols whose meaning a plain separator would lose (`µ`, superscript digits).
/// Uppercase input is lowercased by the caller first.
fn transliterate(c: char) -> Option<&'static str> {
    let ascii = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ð' | 'ď' | 'đ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĳ' => "ij",
        'ĵ' => "j",
        'ķ' | 'ĸ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' | 'ŉ' => "n",
        'ŋ' => "ng",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' | 'ſ' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        // Micro sign and Greek mu: `µg` is a unit, not `g`.
        'µ' | 'μ' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        '¹' => "1",
        '²' => "2",
        '³' => "3",
        _ => return None,
    };
    Some(ascii)
}

/// Athena's reserved DDL keywords, sorted by byte so [`is_reserved_word`] can binary-search.
///
/// From the Athena user guide ("Reserved keywords to escape in DDL statements"), including `DIV`,
/// which later versions of the page list. The page spells one word `CASHE`; Hive's grammar
/// reserves `CACHE`, so both are kept.
const ATHENA_DDL_RESERVED_WORDS: &[&str] = &[
    "ALL",
    "ALTER",
    "AND",
    "ARRAY",
    "AS",
    "AUTHORIZATION",
    "BETWEEN",
    "BIGINT",
    "BINARY",
    "BOOLEAN",
    "BOTH",
    "BY",
    "CACHE",
    "CASE",
    "CASHE",
    "CAST",
    "CHAR",
    "COLUMN",
    "COMMIT",
    "CONF",
    "CONSTRAINT",
    "CREATE",
    "CROSS",
    "CUBE",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIMESTAMP",
    "CURSOR",
    "DATABASE",
    "DATE",
    "DAYOFWEEK",
    "DECIMAL",
    "DELETE",
    "DESCRIBE",
    "DISTINCT",
    "DIV",
    "DOUBLE",
    "DROP",
    "ELSE",
    "END",
    "EXCHANGE",
    "EXISTS",
    "EXTENDED",
    "EXTERNAL",
    "EXTRACT",
    "FALSE",
    "FETCH",
    "FLOAT",
    "FLOOR",
    "FOLLOWING",
    "FOR",
    "FOREIGN",
    "FROM",
    "FULL",
    "FUNCTION",
    "GRANT",
    "GROUP",
    "GROUPING",
    "HAVING",
    "IF",
    "IMPORT",
    "IN",
    "INNER",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "LATERAL",
    "LEFT",
    "LESS",
    "LIKE",
    "LOCAL",
    "MACRO",
    "MAP",
    "MORE",
    "NONE",
    "NOT",
    "NULL",
    "NUMERIC",
    "OF",
    "ON",
    "ONLY",
    "OR",
    "ORDER",
    "OUT",
    "OUTER",
    "OVER",
    "PARTIALSCAN",
    "PARTITION",
    "PERCENT",
    "PRECEDING",
    "PRECISION",
    "PRESERVE",
    "PRIMARY",
    "PROCEDURE",
    "RANGE",
    "READS",
    "REDUCE",
    "REFERENCES",
    "REGEXP",
    "REVOKE",
    "RIGHT",
    "RLIKE",
    "ROLLBACK",
    "ROLLUP",
    "ROW",
    "ROWS",
    "SELECT",
    "SET",
    "SMALLINT",
    "START",
    "TABLE",
    "TABLESAMPLE",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TO",
    "TRANSFORM",
    "TRIGGER",
    "TRUE",
    "TRUNCATE",
    "UNBOUNDED",
    "UNION",
    "UNIQUEJOIN",
    "UPDATE",
    "USER",
    "USING",
    "UTC_TIMESTAMP",
    "VALUES",
    "VARCHAR",
    "VIEWS",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Option<String> {
        normalise_header(raw)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    // ---- normalise_header -------------------------------------------------------------------

    #[test]
    fn header_examples_from_the_contract() {
        assert_eq!(norm(" SHA"), some("sha"));
        assert_eq!(norm("ITEMS  "), some("items"));
        assert_eq!(norm("Code Activité"), some("code_activite"));
        assert_eq!(
            norm("Taux d\u{2019}ETP vacants au 31/12"),
            some("taux_d_etp_vacants_au_31_12")
        );
        assert_eq!(
            norm("standard_charge|Platform|PPO"),
            some("standard_charge_platform_ppo")
        );
        assert_eq!(norm("N° séjour"), some("n_sejour"));
        assert_eq!(norm("2007/Jan"), some("c_2007_jan"));
    }

    #[test]
    fn header_with_nothing_to_keep_is_none() {
        for raw in [
            "", "   ", "___", "\t\r\n", "-", "’", "°", "(%)", "\u{FEFF}", "×÷",
        ] {
            assert_eq!(norm(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn header_in_another_script_is_none_or_keeps_latin_part() {
        assert_eq!(norm("患者"), None);
        assert_eq!(norm("Βάρος"), None);
        assert_eq!(norm("Âge 患者"), some("age"));
        assert_eq!(norm("患者 id"), some("id"));
    }

    #[test]
    fn accents_and_ligatures_are_transliterated() {
        let cases = [
            ("Região", "regiao"),
            ("Größe", "grosse"),
            ("GRÖSSE", "grosse"),
            ("Straẞe", "strasse"),
            ("Œuvre", "oeuvre"),
            ("cœur", "coeur"),
            ("Ærø", "aero"),
            ("Łódź", "lodz"),
            ("Þórður", "thordur"),
            ("Çà et là", "ca_et_la"),
            ("Ĳssel", "ijssel"),
            ("Şcoală Țară", "scoala_tara"),
            ("Dvořák", "dvorak"),
            ("İstanbul", "istanbul"),
            ("ıyi", "iyi"),
            ("naïve façade", "naive_facade"),
            ("Ÿ", "y"),
        ];
        for (raw, want) in cases {
            assert_eq!(norm(raw), some(want), "{raw:?}");
        }
        assert_eq!(
            norm("Região/Unidade da Federação"),
            some("regiao_unidade_da_federacao")
        );
    }

    #[test]
    fn every_latin1_and_extended_a_letter_is_a_letter() {
        // U+00C0..=U+017F are letters except × and ÷, which separate.
        for c in ('\u{C0}'..='\u{17F}').filter(|&c| c != '×' && c != '÷') {
            let got = norm(&format!("x{c}x"));
            let got = got.unwrap_or_default();
            assert!(
                got.starts_with('x') && got.ends_with('x') && !got.contains('_') && got.len() >= 3,
                "{c:?} (U+{:04X}) gave {got:?}",
                u32::from(c)
            );
        }
        assert_eq!(norm("a×b"), some("a_b"));
        assert_eq!(norm("a÷b"), some("a_b"));
    }

    #[test]
    fn units_keep_their_meaning() {
        assert_eq!(norm("Dose (µg)"), some("dose_ug"));
        assert_eq!(norm("Dose (μg)"), some("dose_ug"));
        assert_eq!(norm("Surface (m²)"), some("surface_m2"));
        assert_eq!(norm("Volume m³"), some("volume_m3"));
        assert_eq!(norm("Taux (%)"), some("taux"));
    }

    #[test]
    fn decomposed_accents_and_invisible_characters_are_dropped() {
        assert_eq!(norm("Activite\u{301}"), some("activite"));
        assert_eq!(norm("Code Activite\u{301}"), norm("Code Activité"));
        assert_eq!(norm("\u{FEFF}Code Activité"), some("code_activite"));
        assert_eq!(norm("pa\u{AD}tient"), some("patient"));
        assert_eq!(norm("pa\u{200B}tient"), some("patient"));
        assert_eq!(norm("pa\u{2060}tient"), some("patient"));
    }

    #[test]
    fn runs_of_other_characters_become_one_underscore() {
        assert_eq!(norm("a -- b"), some("a_b"));
        assert_eq!(norm("a__b"), some("a_b"));
        assert_eq!(norm("_a_"), some("a"));
        assert_eq!(norm("(a)"), some("a"));
        assert_eq!(norm("Code\r\nActivité"), some("code_activite"));
        assert_eq!(norm("a\tb"), some("a_b"));
        assert_eq!(norm("a\u{A0}b"), some("a_b"));
        assert_eq!(
            norm("BNF NAME                                    "),
            some("bnf_name")
        );
        assert_eq!(norm("Patient's age"), some("patient_s_age"));
        assert_eq!(norm("e-mail"), some("e_mail"));
        assert_eq!(norm("Nº"), some("n"));
    }

    #[test]
    fn leading_digit_gets_prefix() {
        assert_eq!(norm("1"), some("c_1"));
        assert_eq!(norm("  42 ans"), some("c_42_ans"));
        assert_eq!(norm("_2x"), some("c_2x"));
        assert_eq!(norm("² "), some("c_2"));
        assert_eq!(
            norm("                                                       201304"),
            some("c_201304")
        );
        assert_eq!(norm("a1"), some("a1"));
    }

    #[test]
    fn long_header_is_cut_to_255_bytes() {
        let sentence = "I attest that this price list is true, accurate and complete. ".repeat(15);
        assert!(sentence.len() > 900);
        let got = norm(&sentence).unwrap_or_default();
        assert!(got.len() <= MAX_IDENTIFIER_BYTES, "{}", got.len());
        assert!(is_safe_identifier(&got), "{got}");
        assert!(!got.ends_with('_'), "{got}");
        assert!(got.starts_with("i_attest_that_this_price_list"), "{got}");

        // Exactly at the limit: kept whole.
        let exact = "a".repeat(MAX_IDENTIFIER_BYTES);
        assert_eq!(norm(&exact), Some(exact.clone()));
        // The cut falls just after a separator: the dangling `_` goes too.
        let dangling = format!("{} bcd", "a".repeat(MAX_IDENTIFIER_BYTES - 1));
        assert_eq!(norm(&dangling), Some("a".repeat(MAX_IDENTIFIER_BYTES - 1)));
        // The prefix counts towards the limit.
        let digits = "9".repeat(300);
        let got = norm(&digits).unwrap_or_default();
        assert_eq!(got.len(), MAX_IDENTIFIER_BYTES);
        assert!(got.starts_with("c_999"));
        // Multi-byte input shrinks to ASCII before the cut.
        let accents = "é".repeat(200);
        assert_eq!(norm(&accents), Some("e".repeat(200)));
    }

    #[test]
    fn output_is_always_safe_and_normalising_twice_changes_nothing() {
        let long = "x ".repeat(400);
        let inputs = [
            " SHA",
            "ACT COST   ",
            "Code Libellé",
            "Taux d’ETP vacants au 31/12",
            "standard_charge|Platform Health Insurance|PPO|negotiated_dollar",
            "code|1",
            "2007/Jan",
            "Total",
            "Região/Unidade da Federação",
            "\u{FEFF}Code Activité",
            "__HIVE_DEFAULT_PARTITION__",
            "a\u{0}b\u{1F}c\u{7F}",
            "🙂 emoji 🙂",
            "9",
            long.as_str(),
        ];
        for raw in inputs {
            let Some(name) = norm(raw) else {
                panic!("{raw:?} normalised to nothing");
            };
            assert!(is_safe_identifier(&name), "{raw:?} gave {name:?}");
            assert_eq!(norm(&name), Some(name.clone()), "{raw:?}");
        }
    }

    #[test]
    fn header_may_be_a_reserved_word() {
        assert_eq!(norm("Date"), some("date"));
        assert!(is_reserved_word("date"));
    }

    // ---- normalise_headers ------------------------------------------------------------------

    #[test]
    fn header_row_is_normalised_in_order() {
        let row = [
            " SHA",
            "PCT",
            "PRACTICE",
            "BNF CODE",
            "BNF NAME   ",
            "ITEMS  ",
            "NIC  ",
            "ACT COST  ",
            "QUANTITY",
            "PERIOD",
        ];
        let got = normalise_headers(row).expect("distinct headers");
        assert_eq!(
            got,
            [
                "sha", "pct", "practice", "bnf_code", "bnf_name", "items", "nic", "act_cost",
                "quantity", "period"
            ]
        );
    }

    #[test]
    fn header_row_accepts_borrowed_strings() {
        let owned: Vec<String> = vec!["Code Activité".into(), "Libellé".into()];
        let got = normalise_headers(owned.iter().map(String::as_str));
        assert_eq!(
            got,
            Ok(vec!["code_activite".to_owned(), "libelle".to_owned()])
        );
        assert_eq!(normalise_headers([]), Ok(vec![]));
    }

    #[test]
    fn trailing_empty_header_names_its_position() {
        let row = [" SHA", "PCT", "PERIOD", ""];
        let err = normalise_headers(row).expect_err("empty header");
        assert_eq!(
            err,
            NameError::EmptyHeader {
                header: String::new(),
                position: 4
            }
        );
        assert_eq!(
            err.to_string(),
            r#"header in column 4 ("") has no letter or digit to make a name from"#
        );
    }

    #[test]
    fn colliding_headers_name_both_originals() {
        let row = ["Code Activité", "Libellé", "code_activite"];
        let err = normalise_headers(row).expect_err("collision");
        assert_eq!(
            err,
            NameError::HeaderCollision {
                name: "code_activite".into(),
                first: "Code Activité".into(),
                first_position: 1,
                second: "code_activite".into(),
                second_position: 3,
            }
        );
        assert_eq!(
            err.to_string(),
            r#"headers "Code Activité" (column 1) and "code_activite" (column 3) both normalise to "code_activite""#
        );
    }

    #[test]
    fn collisions_from_padding_case_punctuation_and_prefix() {
        let pairs = [
            ("ITEMS", "items  "),
            ("N° séjour", "N séjour"),
            ("a-b", "a b"),
            ("2007", "c_2007"),
            ("Dose (µg)", "dose ug"),
        ];
        for (a, b) in pairs {
            let err = normalise_headers([a, "other", b]).expect_err("collision");
            let NameError::HeaderCollision {
                first_position,
                second_position,
                ..
            } = err
            else {
                panic!("{a:?}/{b:?}: {err}");
            };
            assert_eq!((first_position, second_position), (1, 3), "{a:?}/{b:?}");
        }
    }

    #[test]
    fn first_problem_in_the_row_is_reported() {
        let err = normalise_headers(["a", "", "A"]).expect_err("two problems");
        assert!(
            matches!(err, NameError::EmptyHeader { position: 2, .. }),
            "{err}"
        );
        let err = normalise_headers(["a", "A", ""]).expect_err("two problems");
        assert!(matches!(err, NameError::HeaderCollision { .. }), "{err}");
    }

    // ---- is_safe_identifier / check_identifier ----------------------------------------------

    #[test]
    fn safe_identifiers() {
        let max = "x".repeat(MAX_IDENTIFIER_BYTES);
        for name in [
            "a",
            "stay_id",
            "a1",
            "a_",
            "hospital_activity",
            "c_2007_jan",
            &max,
        ] {
            assert!(is_safe_identifier(name), "{name:?}");
            assert_eq!(check_identifier(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn unsafe_identifiers() {
        let too_long = "x".repeat(MAX_IDENTIFIER_BYTES + 1);
        for name in [
            "", "_a", "1a", "A", "Stays", "stay-id", "stay id", "durée", " a", "a ", "a\n", "a.b",
            "é", &too_long,
        ] {
            assert!(!is_safe_identifier(name), "{name:?}");
            assert!(check_identifier(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn is_safe_identifier_agrees_with_check_identifier() {
        let alphabet = ['a', 'z', 'A', '0', '9', '_', '-', ' ', 'é', '\0', '\u{7F}'];
        for a in alphabet {
            for b in alphabet {
                let name = format!("{a}{b}");
                assert_eq!(
                    is_safe_identifier(&name),
                    check_identifier(&name).is_ok(),
                    "{name:?}"
                );
            }
        }
    }

    #[test]
    fn check_identifier_names_the_rule_and_the_value() {
        let msg = |name: &str| {
            check_identifier(name)
                .expect_err("invalid name")
                .to_string()
        };
        assert_eq!(msg(""), "name is empty");
        assert_eq!(msg("2abc"), r#"name "2abc" must start with a letter a-z"#);
        assert_eq!(msg("_abc"), r#"name "_abc" must start with a letter a-z"#);
        assert_eq!(msg("Stays"), r#"name "Stays" must start with a letter a-z"#);
        assert_eq!(
            msg("stay-id"),
            r#"name "stay-id" contains '-' at character 5; only a-z, 0-9 and _ are allowed"#
        );
        assert_eq!(
            msg("stay_Id"),
            r#"name "stay_Id" contains 'I' at character 6; only a-z, 0-9 and _ are allowed"#
        );
        assert_eq!(
            msg("durée"),
            r#"name "durée" contains 'é' at character 4; only a-z, 0-9 and _ are allowed"#
        );
        assert_eq!(
            msg("ab\n"),
            r#"name "ab\n" contains '\n' at character 3; only a-z, 0-9 and _ are allowed"#
        );
        let too_long = "x".repeat(256);
        assert_eq!(
            msg(&too_long),
            format!(r#"name "{too_long}" is 256 bytes long; at most 255 are allowed"#)
        );
        // The length limit is in bytes, not characters.
        let wide = "é".repeat(128);
        assert!(matches!(
            check_identifier(&wide),
            Err(NameError::TooLong { len: 256, .. })
        ));
    }

    #[test]
    fn check_identifier_variants_carry_context() {
        assert_eq!(
            check_identifier("a.b"),
            Err(NameError::BadChar {
                name: "a.b".into(),
                ch: '.',
                position: 2
            })
        );
        assert_eq!(
            check_identifier("9"),
            Err(NameError::BadStart { name: "9".into() })
        );
    }

    #[test]
    fn name_error_is_a_thread_safe_error() {
        fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
        assert_error::<NameError>();
    }

    // ---- check_producer_id, check_bucket_name ----------------------------------------------

    #[test]
    fn producer_ids() {
        for ok in ["chu-lyon", "a", "cnam_2", &"x".repeat(64)] {
            assert_eq!(check_producer_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "CHU", "chu lyon", "chu.lyon", "é", &"x".repeat(65)] {
            let e = check_producer_id(bad).unwrap_err();
            assert!(e.contains("a-z 0-9 - _"), "{bad}: {e}");
        }
    }

    #[test]
    fn bucket_names() {
        for ok in [
            "chu-lyon-datamesh",
            "abc",
            "a.b-c",
            "1bucket2",
            &"b".repeat(63),
        ] {
            assert_eq!(check_bucket_name(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("ab", "3 to 63"),
            (&"b".repeat(64), "3 to 63"),
            ("Bad_Bucket", "only a-z"),
            ("-abc", "start and end"),
            ("abc.", "start and end"),
            ("a..b", "adjacent periods"),
            ("192.168.5.4", "IP address"),
            ("xn--abc", "prefix"),
            ("sthree-abc", "prefix"),
            ("abc-s3alias", "suffix"),
            ("abc--ol-s3", "suffix"),
        ] {
            let e = check_bucket_name(bad).unwrap_err();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn key_prefixes() {
        for ok in ["", "products", "a/b/c", "Exports_2026/v1.0", "x!-_.*'()"] {
            assert_eq!(check_key_prefix(ok), Ok(()), "{ok}");
        }
        for bad in [
            "a//b",
            "a/./b",
            "..",
            "a b",
            "a/é",
            "a\\b",
            &"p".repeat(513),
        ] {
            assert!(check_key_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn escaped_partition_values() {
        for v in [
            "2024",
            "a%2Fb",
            "__HIVE_DEFAULT_PARTITION__",
            "Île-de-France",
            "50%25",
            "a b",
        ] {
            assert_eq!(check_escaped_partition_value(v), Ok(()), "{v}");
        }
        for (v, why) in [
            ("", "empty"),
            ("a/b", "escaped as %2F"),
            ("x=y", "escaped as %3D"),
            ("50%", "two uppercase hex"),
            ("%2f", "two uppercase hex"),
            ("%G0", "two uppercase hex"),
            ("a\nb", "escaped as %0A"),
        ] {
            let e = check_escaped_partition_value(v).unwrap_err();
            assert!(e.contains(why), "{v:?}: {e}");
        }
        // Whatever escape_partition_value makes passes.
        for raw in ["a/b=c%d", "\u{0}\u{7F}", "{[]}", "", "x"] {
            let escaped = escape_partition_value(raw);
            assert_eq!(check_escaped_partition_value(&escaped), Ok(()), "{raw:?}");
        }
    }

    // ---- is_reserved_word -------------------------------------------------------------------

    #[test]
    fn reserved_words_in_any_case() {
        for word in [
            "date",
            "DATE",
            "Date",
            "partition",
            "user",
            "timestamp",
            "current_date",
            "utc_timestamp",
            "cashe",
            "cache",
            "div",
            "all",
            "with",
            "table",
            "views",
        ] {
            assert!(is_reserved_word(word), "{word:?}");
        }
    }

    #[test]
    fn ordinary_names_are_not_reserved() {
        for word in [
            "", "stay_id", "dates", "year", "month", "day", "dep", "view", "current_", "a", "zzz",
            "date ", "dàte",
        ] {
            assert!(!is_reserved_word(word), "{word:?}");
        }
    }

    #[test]
    fn reserved_word_list_is_sorted_unique_and_upper_case() {
        for pair in ATHENA_DDL_RESERVED_WORDS.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        for word in ATHENA_DDL_RESERVED_WORDS {
            assert!(
                word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{word}"
            );
            // Every reserved word is itself a valid identifier once lowercased: validity and
            // reservation are separate questions.
            assert!(is_safe_identifier(&word.to_ascii_lowercase()), "{word}");
        }
        // The guide's 137 words as mirrored in awsdocs/amazon-athena-user-guide, `DIV` (on the
        // current page, added since) and `CACHE`.
        assert_eq!(ATHENA_DDL_RESERVED_WORDS.len(), 139);
    }

    // ---- escape_partition_value -------------------------------------------------------------

    #[test]
    fn empty_value_is_the_default_partition() {
        assert_eq!(escape_partition_value(""), "__HIVE_DEFAULT_PARTITION__");
        assert_eq!(HIVE_DEFAULT_PARTITION, "__HIVE_DEFAULT_PARTITION__");
    }

    #[test]
    fn plain_values_are_kept() {
        for v in [
            "2024",
            "03",
            "2A",
            "Île-de-France",
            "a b",
            "x}y",
            "a+b,c;d",
            "€",
            "患者",
            "~!@$&()<>|",
            // A literal value spelled like the default is not escaped, as in Hive.
            "__HIVE_DEFAULT_PARTITION__",
        ] {
            assert_eq!(escape_partition_value(v), v, "{v:?}");
        }
    }

    #[test]
    fn special_characters_are_percent_escaped() {
        let cases = [
            ("a/b", "a%2Fb"),
            ("50%", "50%25"),
            ("x=y", "x%3Dy"),
            ("12:30", "12%3A30"),
            ("it's", "it%27s"),
            ("\"q\"", "%22q%22"),
            ("#1", "%231"),
            ("*", "%2A"),
            ("?", "%3F"),
            ("C:\\dir", "C%3A%5Cdir"),
            ("{[]}", "%7B%5B%5D}"),
            ("a^b", "a%5Eb"),
            ("line\nbreak", "line%0Abreak"),
            ("tab\there", "tab%09here"),
            ("\r", "%0D"),
            ("\u{1}", "%01"),
            ("\u{1F}", "%1F"),
            ("\u{7F}", "%7F"),
            ("\u{0}", "%00"),
            ("é/è", "é%2Fè"),
        ];
        for (v, want) in cases {
            assert_eq!(escape_partition_value(v), want, "{v:?}");
        }
    }

    #[test]
    fn ascii_escape_table_matches_hive() {
        let listed = b"\"#%'*/:=?\\{[]^";
        for b in 0u8..=0x7F {
            let c = char::from(b);
            let got = escape_partition_value(&c.to_string());
            let escaped = b < 0x20 || b == 0x7F || listed.contains(&b);
            if escaped {
                assert_eq!(got, format!("%{b:02X}"), "{c:?}");
            } else {
                assert_eq!(got, c.to_string(), "{c:?}");
            }
        }
    }

    #[test]
    fn escaping_is_reversible() {
        fn unescape(s: &str) -> String {
            let bytes = s.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii hex");
                    out.push(u8::from_str_radix(hex, 16).expect("hex"));
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).expect("utf-8")
        }
        for v in ["a/b=c%d", "%25", "100%", "é:ü", "\u{0}\u{7F}", "x"] {
            let escaped = escape_partition_value(v);
            assert!(
                !escaped.contains('/') && !escaped.contains('='),
                "{escaped}"
            );
            assert_eq!(unescape(&escaped), v);
        }
    }
}
