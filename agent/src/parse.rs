//! Typed parsing of one CSV field: integers, decimals, doubles and booleans.
//!
//! Owns the number rules of contracts: surrounding spaces ignored, sign and leading zeros
//! accepted, decimal comma, optional thousands separator (grouped by three), exact decimal scale
//! (extra fractional digits must be zeros: nothing is rounded silently). Dates live in
//! [`crate::datefmt`]. Errors are short reasons; the caller adds file, line and column.

/// Number notation of a product.
#[derive(Debug, Clone, Copy)]
pub struct Numeric {
    pub decimal: u8,
    pub thousands: Option<u8>,
}

/// Strips ASCII spaces and tabs around a field.
#[inline]
pub fn trim(s: &[u8]) -> &[u8] {
    let space = |b: u8| b == b' ' || b == b'\t';
    match s {
        [] => s,
        [first, .., last] if !space(*first) && !space(*last) => s,
        [only] if !space(*only) => s,
        _ => trim_ends(s),
    }
}

/// [`trim`] of a value that starts or ends with a space or tab.
#[cold]
fn trim_ends(s: &[u8]) -> &[u8] {
    let mut a = 0;
    let mut b = s.len();
    while a < b && matches!(s[a], b' ' | b'\t') {
        a += 1;
    }
    while b > a && matches!(s[b - 1], b' ' | b'\t') {
        b -= 1;
    }
    &s[a..b]
}

/// Removes the thousands separators of `s` into `buf` after checking they group digits by three.
/// (A no-break space or narrow no-break space counts as a space separator.)
fn strip_thousands<'a>(
    s: &'a [u8],
    n: Numeric,
    buf: &'a mut Vec<u8>,
) -> Result<&'a [u8], &'static str> {
    let Some(t) = n.thousands else { return Ok(s) };
    let has_nbsp = t == b' ' && s.iter().any(|&c| c >= 0x80);
    if !s.contains(&t) && !has_nbsp {
        return Ok(s);
    }
    buf.clear();
    let text;
    let s: &[u8] = if has_nbsp {
        text = String::from_utf8_lossy(s).replace(['\u{a0}', '\u{202f}'], " ");
        text.as_bytes()
    } else {
        s
    };
    // Integer part ends at the decimal separator.
    let int_end = s.iter().position(|&c| c == n.decimal).unwrap_or(s.len());
    let (int_part, rest) = s.split_at(int_end);
    let digits_start = int_part
        .iter()
        .position(|c| c.is_ascii_digit())
        .unwrap_or(0);
    let groups: Vec<&[u8]> = int_part[digits_start..].split(|&c| c == t).collect();
    if groups.len() > 1
        && (groups[0].is_empty() || groups[0].len() > 3 || groups[1..].iter().any(|g| g.len() != 3))
    {
        return Err("thousands separator not between groups of three digits");
    }
    if rest.contains(&t) {
        return Err("thousands separator after the decimal separator");
    }
    buf.extend_from_slice(&int_part[..digits_start]);
    for g in groups {
        buf.extend_from_slice(g);
    }
    buf.extend_from_slice(rest);
    Ok(buf.as_slice())
}

/// Parses a signed integer within `[min, max]`.
pub fn parse_int(
    s: &[u8],
    n: Numeric,
    min: i64,
    max: i64,
    buf: &mut Vec<u8>,
) -> Result<i64, &'static str> {
    let s = strip_thousands(s, n, buf)?;
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err("not an integer");
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(if c == n.decimal || c == b'.' || c == b',' {
                "not an integer (has a fractional part)"
            } else {
                "not an integer"
            });
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((c - b'0') as i64))
            .ok_or("integer out of range")?;
    }
    let v = if neg { -v } else { v };
    if v < min || v > max {
        return Err("integer out of range");
    }
    Ok(v)
}

/// The common shape of an integer, parsed without the general rules: an optional `-` and 1 to
/// 18 ASCII digits (no `+`, no separators). `None` means "use [`parse_int`]", which gives the
/// same value for every text accepted here.
#[inline]
pub fn fast_int(s: &[u8]) -> Option<i64> {
    let (neg, d) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if d.is_empty() || d.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &c in d {
        let x = c.wrapping_sub(b'0');
        if x > 9 {
            return None;
        }
        v = v * 10 + x as i64;
    }
    Some(if neg { -v } else { v })
}

/// The common shape of a decimal of precision up to 18: an optional `-`, digits, at most one
/// decimal separator and at most `scale` digits after it, within `precision`. `None` means "use
/// [`parse_decimal`]", which gives the same value for every text accepted here.
#[inline]
pub fn fast_decimal(s: &[u8], decimal: u8, precision: u8, scale: i8) -> Option<i128> {
    if precision > 18 || scale < 0 {
        return None;
    }
    let (neg, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let (int_part, frac) = match memchr::memchr(decimal, body) {
        Some(k) => (&body[..k], &body[k + 1..]),
        None => (body, &body[..0]),
    };
    let scale = scale as usize;
    if int_part.len() + frac.len() == 0 || frac.len() > scale || int_part.len() > 18 {
        return None;
    }
    let mut v: u64 = 0;
    let mut significant = 0usize;
    for &c in int_part {
        let x = c.wrapping_sub(b'0');
        if x > 9 {
            return None;
        }
        if v == 0 && x == 0 {
            continue;
        }
        significant += 1;
        v = v * 10 + x as u64;
    }
    if significant + scale > precision as usize {
        return None;
    }
    for &c in frac {
        let x = c.wrapping_sub(b'0');
        if x > 9 {
            return None;
        }
        v = v * 10 + x as u64;
    }
    for _ in frac.len()..scale {
        v *= 10;
    }
    let v = v as i128;
    Some(if neg { -v } else { v })
}

/// Parses a decimal into its unscaled value at `scale`, checking `precision`.
pub fn parse_decimal(
    s: &[u8],
    n: Numeric,
    precision: u8,
    scale: i8,
    buf: &mut Vec<u8>,
) -> Result<i128, &'static str> {
    let s = strip_thousands(s, n, buf)?;
    let (neg, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let scale = scale as usize;
    // Up to 18 digits fit a u64, much cheaper to accumulate than an i128.
    let mut v = Acc::new(precision);
    let mut int_digits = 0usize;
    let mut frac_digits = 0usize;
    let mut seen_sep = false;
    let mut any = false;
    for &c in body {
        if c == n.decimal && !seen_sep {
            seen_sep = true;
            continue;
        }
        if !c.is_ascii_digit() {
            return Err(if c == b'.' || c == b',' {
                "not a decimal (unexpected separator; check csv.decimal and csv.thousands)"
            } else if c == b'e' || c == b'E' {
                "not a decimal (exponent notation; declare the column as double)"
            } else {
                "not a decimal"
            });
        }
        any = true;
        let d = (c - b'0') as i128;
        if seen_sep {
            if frac_digits >= scale {
                if d != 0 {
                    return Err("more decimal places than the column's scale (no rounding)");
                }
                continue;
            }
            frac_digits += 1;
        } else {
            if v.is_zero() && d == 0 {
                // leading zero: does not count towards precision
                continue;
            }
            int_digits += 1;
        }
        if int_digits + scale > precision as usize || int_digits > 38 {
            return Err("too many digits for the column's precision");
        }
        v.push_digit(c - b'0');
    }
    if !any {
        return Err("not a decimal");
    }
    let mut v = v.value();
    for _ in frac_digits..scale {
        v *= 10;
    }
    Ok(if neg { -v } else { v })
}

/// A decimal's digits so far: a u64 while the declared precision allows at most 18 digits
/// (the digit count is checked before each digit), else an i128.
enum Acc {
    Small(u64),
    Big(i128),
}

impl Acc {
    fn new(precision: u8) -> Self {
        if precision <= 18 {
            Self::Small(0)
        } else {
            Self::Big(0)
        }
    }

    #[inline]
    fn is_zero(&self) -> bool {
        matches!(self, Self::Small(0) | Self::Big(0))
    }

    #[inline]
    fn push_digit(&mut self, d: u8) {
        match self {
            Self::Small(v) => *v = *v * 10 + d as u64,
            Self::Big(v) => *v = *v * 10 + d as i128,
        }
    }

    fn value(self) -> i128 {
        match self {
            Self::Small(v) => v as i128,
            Self::Big(v) => v,
        }
    }
}

/// Parses a double; `nan`/`inf` are refused (Athena-hostile, usually an export bug).
pub fn parse_double(s: &[u8], n: Numeric, buf: &mut Vec<u8>) -> Result<f64, &'static str> {
    let s = strip_thousands(s, n, buf)?;
    let text;
    let s: &[u8] = if n.decimal == b',' {
        if s.contains(&b'.') {
            return Err("not a number ('.' with csv.decimal = \",\")");
        }
        text = s
            .iter()
            .map(|&c| if c == b',' { b'.' } else { c })
            .collect::<Vec<u8>>();
        &text
    } else {
        s
    };
    if s.iter()
        .any(|c| c.is_ascii_alphabetic() && *c != b'e' && *c != b'E')
    {
        return Err("not a number");
    }
    let st = std::str::from_utf8(s).map_err(|_| "not a number")?;
    let v: f64 = st.parse().map_err(|_| "not a number")?;
    if !v.is_finite() {
        return Err("number out of range");
    }
    Ok(v)
}

/// Parses a boolean against the column's (lowercase) lists.
pub fn parse_bool(
    s: &[u8],
    true_values: &[String],
    false_values: &[String],
) -> Result<bool, &'static str> {
    let eq = |v: &String| v.len() == s.len() && v.as_bytes().eq_ignore_ascii_case(s);
    if true_values.iter().any(eq) {
        Ok(true)
    } else if false_values.iter().any(eq) {
        Ok(false)
    } else {
        Err("not a boolean (see true_values/false_values)")
    }
}

/// Formats an unscaled decimal as text (`1520`, scale 2 → `15.20`).
pub fn format_decimal(v: i128, scale: i8) -> String {
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    let s = if scale == 0 {
        digits
    } else if digits.len() > scale {
        format!(
            "{}.{}",
            &digits[..digits.len() - scale],
            &digits[digits.len() - scale..]
        )
    } else {
        format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
    };
    if neg { format!("-{s}") } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOT: Numeric = Numeric {
        decimal: b'.',
        thousands: None,
    };
    const COMMA: Numeric = Numeric {
        decimal: b',',
        thousands: None,
    };
    const FR: Numeric = Numeric {
        decimal: b',',
        thousands: Some(b' '),
    };
    const US: Numeric = Numeric {
        decimal: b'.',
        thousands: Some(b','),
    };

    fn dec(s: &str, n: Numeric, p: u8, sc: i8) -> Result<String, &'static str> {
        parse_decimal(trim(s.as_bytes()), n, p, sc, &mut Vec::new()).map(|v| format_decimal(v, sc))
    }

    fn int(s: &str, n: Numeric) -> Result<i64, &'static str> {
        parse_int(
            trim(s.as_bytes()),
            n,
            i32::MIN as i64,
            i32::MAX as i64,
            &mut Vec::new(),
        )
    }

    #[test]
    fn padded_decimal_comma() {
        assert_eq!(dec("        15,2", COMMA, 12, 2).unwrap(), "15.20");
        assert_eq!(dec("-0,5", COMMA, 12, 2).unwrap(), "-0.50");
        assert_eq!(dec(",5", COMMA, 12, 2).unwrap(), "0.50");
    }

    #[test]
    fn leading_dot_and_long_zero_tail() {
        assert_eq!(
            dec(".081800000000000000000000000", DOT, 10, 6).unwrap(),
            "0.081800"
        );
        assert_eq!(
            dec(".000000000000000000000000000", DOT, 10, 6).unwrap(),
            "0.000000"
        );
        assert_eq!(dec("00000000.64", DOT, 12, 2).unwrap(), "0.64");
    }

    #[test]
    fn decimal_never_rounds_or_overflows_silently() {
        assert!(dec("1.234", DOT, 12, 2).unwrap_err().contains("scale"));
        assert!(dec("12345", DOT, 5, 2).unwrap_err().contains("precision"));
        assert_eq!(dec("123.45", DOT, 5, 2).unwrap(), "123.45");
        assert!(
            dec("25,000", DOT, 12, 2).is_err(),
            "25,000 must not become 25.0"
        );
        assert!(dec("1.5", COMMA, 12, 2).is_err());
        assert!(dec("", DOT, 12, 2).is_err());
        assert!(dec("-", DOT, 12, 2).is_err());
        assert!(dec("1e5", DOT, 12, 2).unwrap_err().contains("double"));
        assert!(dec("1.2.3", DOT, 12, 2).is_err());
    }

    #[test]
    fn fast_paths_agree_with_the_general_rules() {
        let mut buf = Vec::new();
        let ints = [
            "0",
            "7",
            "-7",
            "007",
            "123456789012345678",
            "1234567890123456789",
            "+5",
            "",
            "-",
            "1.0",
            "1,0",
            "1 000",
            "12a",
            "--1",
            "-0",
        ];
        for t in ints {
            if let Some(v) = fast_int(t.as_bytes()) {
                assert_eq!(
                    Ok(v),
                    parse_int(t.as_bytes(), DOT, i64::MIN, i64::MAX, &mut buf),
                    "{t:?}"
                );
            }
        }
        assert_eq!(fast_int(b"+5"), None);
        assert_eq!(fast_int(b"1234567890123456789"), None);
        let decs = [
            "0",
            "1",
            "1.5",
            "1.50",
            "1.505",
            ".5",
            "5.",
            "-.5",
            "-0.00",
            "007.10",
            "9999999999.99",
            "99999999999.99",
            "1,5",
            "1.2.3",
            "",
            ".",
            "-",
            "1e5",
            "+1",
            "12345678901234567.8",
        ];
        for (p, sc) in [(12u8, 2i8), (18, 0), (18, 4), (5, 2), (3, 0)] {
            for t in decs {
                if let Some(v) = fast_decimal(t.as_bytes(), b'.', p, sc) {
                    assert_eq!(
                        Ok(v),
                        parse_decimal(t.as_bytes(), DOT, p, sc, &mut buf),
                        "{t:?} as decimal({p},{sc})"
                    );
                }
            }
        }
        assert_eq!(fast_decimal(b"1,5", b',', 12, 2), Some(150));
        assert_eq!(
            fast_decimal(b"1.505", b'.', 12, 2),
            None,
            "more places: the general rule decides"
        );
        assert_eq!(
            fast_decimal(b"1", b'.', 20, 2),
            None,
            "precision above 18: general rule"
        );
    }

    #[test]
    fn decimal_precision_limits_on_both_accumulators() {
        let nines = |n: usize| "9".repeat(n);
        assert_eq!(dec(&nines(18), DOT, 18, 0).unwrap(), nines(18));
        assert!(dec(&nines(19), DOT, 18, 0).is_err());
        assert_eq!(
            dec(&format!("-{}.{}", nines(16), "99"), DOT, 18, 2).unwrap(),
            format!("-{}.99", nines(16))
        );
        assert_eq!(dec(&nines(38), DOT, 38, 0).unwrap(), nines(38));
        assert!(dec(&nines(39), DOT, 38, 0).is_err());
        assert_eq!(dec("0000123.4", DOT, 4, 1).unwrap(), "123.4");
    }

    #[test]
    fn thousands_grouping() {
        assert_eq!(dec("25,000", US, 12, 2).unwrap(), "25000.00");
        assert_eq!(dec("1,234,567.5", US, 12, 2).unwrap(), "1234567.50");
        assert!(dec("25,00", US, 12, 2).is_err());
        assert!(dec("1,2345", US, 12, 2).is_err());
        assert_eq!(dec("1 234,5", FR, 12, 2).unwrap(), "1234.50");
        assert_eq!(dec("1\u{a0}234,5", FR, 12, 2).unwrap(), "1234.50");
        assert_eq!(int("12 345", FR).unwrap(), 12345);
    }

    #[test]
    fn integers() {
        assert_eq!(int("0000001", DOT).unwrap(), 1);
        assert_eq!(int("  42 ", DOT).unwrap(), 42);
        assert_eq!(int("+7", DOT).unwrap(), 7);
        assert_eq!(int("-2147483648", DOT).unwrap(), i32::MIN as i64);
        assert!(int("2147483648", DOT).unwrap_err().contains("range"));
        assert!(int("1.0", DOT).unwrap_err().contains("fractional"));
        assert!(int("2A", DOT).is_err());
        assert!(int("Too Few to Report", DOT).is_err());
        assert!(int("", DOT).is_err());
        assert!(
            parse_int(
                b"99999999999999999999",
                DOT,
                i64::MIN,
                i64::MAX,
                &mut Vec::new()
            )
            .is_err()
        );
    }

    #[test]
    fn doubles() {
        let d = |s: &str, n| parse_double(trim(s.as_bytes()), n, &mut Vec::new());
        assert_eq!(d("8,33", COMMA).unwrap(), 8.33);
        assert_eq!(d("168.0", DOT).unwrap(), 168.0);
        assert_eq!(d("1e3", DOT).unwrap(), 1000.0);
        assert!(d("8.33", COMMA).is_err());
        assert!(d("nan", DOT).is_err());
        assert!(d("inf", DOT).is_err());
        assert!(d("...", DOT).is_err());
    }

    #[test]
    fn booleans() {
        let t: Vec<String> = ["true", "y", "1"].map(String::from).to_vec();
        let f: Vec<String> = ["false", "n", "0"].map(String::from).to_vec();
        assert_eq!(parse_bool(b"Y", &t, &f), Ok(true));
        assert_eq!(parse_bool(b"TRUE", &t, &f), Ok(true));
        assert_eq!(parse_bool(b"n", &t, &f), Ok(false));
        assert!(parse_bool(b"maybe", &t, &f).is_err());
    }
}
