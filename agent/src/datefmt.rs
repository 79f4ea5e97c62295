//! Date and timestamp formats: a small strftime subset compiled once and parsed without allocation.
//!
//! Owns the format language of contracts (`%Y %m %d %H %M %S %f %b %%` and literals), calendar
//! arithmetic (days since 1970-01-01) and the rule that refuses day/month-swapped format pairs.
//! It does not know about columns, nulls or errors beyond "this value does not match".

/// One compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    text: String,
    items: Vec<Item>,
    has_time: bool,
    /// For date formats of fixed-width numbers and one-byte literals (`%Y-%m-%d`, `%d/%m/%Y`,
    /// `%Y%m%d`): the layout of a value that has every number at full width, parsed without the
    /// general loop. Values of another length take the general path.
    fixed: Option<Fixed>,
}

/// Byte positions of a fixed-width date layout.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fixed {
    len: usize,
    year: usize,
    month: usize,
    day: usize,
    /// (position, byte) of each literal.
    lits: Vec<(usize, u8)>,
    /// The value as one little-endian word (layouts of 8 to 16 bytes): which bits are literal
    /// bytes, what they hold, and which bits are digits.
    lit_mask: u128,
    lit_bits: u128,
    digit_mask: u128,
    /// The common ten-byte layouts, parsed with their positions known at compile time.
    shape: Shape,
}

/// Ten-byte date layouts with two one-byte separators (`%Y-%m-%d`, `%d/%m/%Y`, `%m/%d/%Y`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Year, month, day.
    Ymd(u8, u8),
    /// Day, month, year.
    Dmy(u8, u8),
    /// Month, day, year.
    Mdy(u8, u8),
    Other,
}

/// `b` in every byte of a word.
const fn bytes(b: u8) -> u128 {
    u128::from_le_bytes([b; 16])
}

impl Fixed {
    fn of(items: &[Item]) -> Option<Self> {
        let (mut pos, mut year, mut month, mut day, mut lits) = (0, None, None, None, Vec::new());
        for it in items {
            match *it {
                Item::Year => {
                    year = Some(pos);
                    pos += 4;
                }
                Item::Month => {
                    month = Some(pos);
                    pos += 2;
                }
                Item::Day => {
                    day = Some(pos);
                    pos += 2;
                }
                Item::Lit(c) if !c.is_ascii_digit() => {
                    lits.push((pos, c));
                    pos += 1;
                }
                _ => return None,
            }
        }
        let (mut lit_mask, mut lit_bits) = (0u128, 0u128);
        for &(at, c) in lits.iter().filter(|&&(at, _)| at < 16) {
            lit_mask |= 0xFF << (8 * at);
            lit_bits |= u128::from(c) << (8 * at);
        }
        let all = if pos >= 16 {
            u128::MAX
        } else {
            (1u128 << (8 * pos)) - 1
        };
        let (year, month, day) = (year?, month?, day?);
        let shape = match (pos, year, month, day, lits.as_slice()) {
            (10, 0, 5, 8, &[(4, a), (7, b)]) => Shape::Ymd(a, b),
            (10, 6, 3, 0, &[(2, a), (5, b)]) => Shape::Dmy(a, b),
            (10, 6, 0, 3, &[(2, a), (5, b)]) => Shape::Mdy(a, b),
            _ => Shape::Other,
        };
        Some(Self {
            len: pos,
            year,
            month,
            day,
            lits,
            lit_mask,
            lit_bits,
            digit_mask: all & !lit_mask,
            shape,
        })
    }

    #[inline]
    fn parse(&self, s: &[u8]) -> Option<Option<i32>> {
        if s.len() != self.len {
            return None;
        }
        if let Ok(t) = <&[u8; 10]>::try_from(s) {
            match self.shape {
                Shape::Ymd(a, b) => return Some(ten::<0, 5, 8, 4, 7>(t, a, b)),
                Shape::Dmy(a, b) => return Some(ten::<6, 3, 0, 2, 5>(t, a, b)),
                Shape::Mdy(a, b) => return Some(ten::<6, 0, 3, 2, 5>(t, a, b)),
                Shape::Other => {}
            }
        }
        if !(8..=16).contains(&s.len()) {
            return Some(self.parse_bytes(s));
        }
        // The value as one word: its first eight bytes and its last eight (they overlap
        // unless it has sixteen), then every byte checked and converted at once.
        let n = s.len();
        let first = u64::from_le_bytes(s[..8].try_into().ok()?);
        let last = u64::from_le_bytes(s[n - 8..].try_into().ok()?);
        let x = u128::from(first) | u128::from(last) << (8 * (n - 8));
        if x & self.lit_mask != self.lit_bits {
            return Some(None);
        }
        let (high, zero) = (bytes(0xF0) & self.digit_mask, bytes(b'0') & self.digit_mask);
        let y = x & self.digit_mask;
        // a digit is 0x30..=0x39: high nibble 3, and still 3 after adding 6 (no carry
        // crosses a byte once the high nibble is 3)
        if y & high != zero || (y + (bytes(6) & self.digit_mask)) & high != zero {
            return Some(None);
        }
        let v = (y - zero).to_le_bytes();
        let d = |i: usize| u32::from(v[i]);
        let y = d(self.year) * 1000 + d(self.year + 1) * 100 + d(self.year + 2) * 10;
        Some(days_from_civil(
            (y + d(self.year + 3)) as i32,
            d(self.month) * 10 + d(self.month + 1),
            d(self.day) * 10 + d(self.day + 1),
        ))
    }

    /// [`Fixed::parse`] byte by byte, for a value of the layout's length.
    fn parse_bytes(&self, s: &[u8]) -> Option<i32> {
        let num = |at: usize, n: usize| -> Option<u32> {
            let mut v = 0u32;
            for &b in &s[at..at + n] {
                if !b.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + (b - b'0') as u32;
            }
            Some(v)
        };
        for &(at, c) in &self.lits {
            if s[at] != c {
                return None;
            }
        }
        days_from_civil(
            num(self.year, 4)? as i32,
            num(self.month, 2)?,
            num(self.day, 2)?,
        )
    }
}

/// A ten-byte date whose year, month and day start at `Y`, `M` and `D`, with the separators
/// `a` at `A` and `b` at `B`: every byte checked at once, as one word.
#[inline(always)]
fn ten<const Y: usize, const M: usize, const D: usize, const A: usize, const B: usize>(
    s: &[u8; 10],
    a: u8,
    b: u8,
) -> Option<i32> {
    let digits: u128 = 0xFFFF_FFFF << (8 * Y) | 0xFFFF << (8 * M) | 0xFFFF << (8 * D);
    let mut w = [0u8; 16];
    w[..10].copy_from_slice(s);
    let w = u128::from_le_bytes(w);
    // a digit is 0x30..=0x39: high nibble 3, and still 3 after adding 6 (no carry crosses a
    // byte once the high nibble is 3)
    let x = w & digits;
    if (s[A] != a)
        | (s[B] != b)
        | (x & bytes(0xF0) != bytes(0x30) & digits)
        | ((x + (bytes(6) & digits)) & bytes(0xF0) != bytes(0x30) & digits)
    {
        return None;
    }
    let v = x - (bytes(b'0') & digits);
    let d = |i: usize| (v >> (8 * i)) as u32 & 0xFF;
    days_from_civil(
        (d(Y) * 1000 + d(Y + 1) * 100 + d(Y + 2) * 10 + d(Y + 3)) as i32,
        d(M) * 10 + d(M + 1),
        d(D) * 10 + d(D + 1),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Year,
    Month,
    MonthName,
    Day,
    Hour,
    Minute,
    Second,
    Fraction,
    Lit(u8),
}

impl DateFormat {
    /// Compiles `text`; `timestamp` allows time directives.
    pub fn compile(text: &str, timestamp: bool) -> Result<Self, String> {
        let b = text.as_bytes();
        let mut items = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let Some(&d) = b.get(i + 1) else {
                    return Err(format!("format {text:?} ends with a lone %"));
                };
                items.push(match d {
                    b'Y' => Item::Year,
                    b'm' => Item::Month,
                    b'b' => Item::MonthName,
                    b'd' => Item::Day,
                    b'H' => Item::Hour,
                    b'M' => Item::Minute,
                    b'S' => Item::Second,
                    b'f' => Item::Fraction,
                    b'%' => Item::Lit(b'%'),
                    _ => {
                        return Err(format!(
                            "format {text:?}: unsupported directive %{}; use %Y %m %d %b %H %M %S %f",
                            d as char
                        ));
                    }
                });
                i += 2;
            } else {
                items.push(Item::Lit(b[i]));
                i += 1;
            }
        }
        let count = |it: Item| items.iter().filter(|&&x| x == it).count();
        let months = count(Item::Month) + count(Item::MonthName);
        if count(Item::Year) != 1 || months != 1 || count(Item::Day) != 1 {
            return Err(format!(
                "format {text:?} needs exactly one %Y, one %m (or %b) and one %d"
            ));
        }
        let has_time = [Item::Hour, Item::Minute, Item::Second, Item::Fraction]
            .iter()
            .any(|&t| count(t) > 0);
        if has_time && !timestamp {
            return Err(format!(
                "format {text:?} has a time part; the column is a date (use type = \"timestamp\")"
            ));
        }
        for t in [Item::Hour, Item::Minute, Item::Second, Item::Fraction] {
            if count(t) > 1 {
                return Err(format!("format {text:?} repeats a time directive"));
            }
        }
        // Two adjacent variable-width numbers cannot be split: %Y%m%d is fine only with
        // fixed widths, which we apply when a number directly follows another.
        let fixed = if has_time { None } else { Fixed::of(&items) };
        Ok(Self {
            text: text.to_string(),
            items,
            has_time,
            fixed,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether [`DateFormat::parse_fixed_date`] can accept values (a date format of fixed-width
    /// numbers and one-byte literals).
    pub fn is_fixed(&self) -> bool {
        self.fixed.is_some()
    }

    /// The days of `s` if it has this format's fixed layout (every number at full width);
    /// `None` when it does not (the general parser decides then). Never disagrees with
    /// [`DateFormat::parse_date`] on a value it accepts.
    #[inline]
    pub fn parse_fixed_date(&self, s: &[u8]) -> Option<i32> {
        self.fixed.as_ref()?.parse(s)?
    }

    /// Parses a date; returns days since 1970-01-01.
    pub fn parse_date(&self, s: &[u8]) -> Option<i32> {
        if let Some(f) = &self.fixed
            && let Some(days) = f.parse(s)
        {
            return days;
        }
        let p = self.parse_parts(s)?;
        days_from_civil(p.year, p.month, p.day)
    }

    /// Parses a timestamp; returns milliseconds since 1970-01-01T00:00:00 (no time zone).
    pub fn parse_timestamp_millis(&self, s: &[u8]) -> Option<i64> {
        let p = self.parse_parts(s)?;
        let days = days_from_civil(p.year, p.month, p.day)? as i64;
        Some(
            days * 86_400_000
                + (p.hour as i64 * 3600 + p.minute as i64 * 60 + p.second as i64) * 1000
                + p.millis as i64,
        )
    }

    fn parse_parts(&self, s: &[u8]) -> Option<Parts> {
        let mut p = Parts::default();
        let mut pos = 0;
        let n = self.items.len();
        for (k, item) in self.items.iter().enumerate() {
            // A number directly beside another number has its full fixed width.
            let is_num = |i: Option<&Item>| {
                matches!(
                    i,
                    Some(
                        Item::Year
                            | Item::Month
                            | Item::Day
                            | Item::Hour
                            | Item::Minute
                            | Item::Second
                    )
                )
            };
            let next_is_number = (k + 1 < n && is_num(self.items.get(k + 1)))
                || (k > 0 && is_num(self.items.get(k - 1)));
            match *item {
                Item::Lit(c) => {
                    if s.get(pos) != Some(&c) {
                        return None;
                    }
                    pos += 1;
                }
                Item::Year => {
                    p.year = digits(s, &mut pos, 4, 4)? as i32;
                }
                Item::Month => {
                    p.month = digits(s, &mut pos, if next_is_number { 2 } else { 1 }, 2)?
                }
                Item::Day => p.day = digits(s, &mut pos, if next_is_number { 2 } else { 1 }, 2)?,
                Item::Hour => p.hour = digits(s, &mut pos, if next_is_number { 2 } else { 1 }, 2)?,
                Item::Minute => p.minute = digits(s, &mut pos, 2, 2)?,
                Item::Second => p.second = digits(s, &mut pos, 2, 2)?,
                Item::Fraction => {
                    let start = pos;
                    let mut ms = 0u32;
                    while pos < s.len() && s[pos].is_ascii_digit() && pos - start < 9 {
                        if pos - start < 3 {
                            ms = ms * 10 + (s[pos] - b'0') as u32;
                        }
                        pos += 1;
                    }
                    let len = pos - start;
                    if len == 0 {
                        return None;
                    }
                    for _ in len..3 {
                        ms *= 10;
                    }
                    p.millis = ms;
                }
                Item::MonthName => {
                    let name = s.get(pos..pos + 3)?;
                    let idx = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
                    p.month = idx as u32 + 1;
                    pos += 3;
                }
            }
        }
        if pos != s.len() || p.hour > 23 || p.minute > 59 || p.second > 59 {
            return None;
        }
        Some(p)
    }

    /// Whether the format carries a time of day.
    pub fn has_time(&self) -> bool {
        self.has_time
    }

    /// The format with day and month directives exchanged, if it has both as numbers.
    fn swapped(&self) -> Option<Vec<Item>> {
        if !self.items.contains(&Item::Month) {
            return None;
        }
        Some(
            self.items
                .iter()
                .map(|&i| match i {
                    Item::Month => Item::Day,
                    Item::Day => Item::Month,
                    x => x,
                })
                .collect(),
        )
    }
}

/// Remembers the days of recently parsed date texts (exports repeat the same dates on many
/// rows): a direct-mapped table keyed by the text itself, so a hit skips the parse and the
/// calendar arithmetic. Texts longer than 15 bytes are not cached.
pub struct DateCache {
    slots: Vec<(u128, Option<i32>)>,
}

const DATE_CACHE_SLOTS: usize = 4096;

impl Default for DateCache {
    fn default() -> Self {
        Self {
            slots: vec![(0, None); DATE_CACHE_SLOTS],
        }
    }
}

impl DateCache {
    /// A cache that caches nothing (for columns that are not dates).
    pub fn none() -> Self {
        Self { slots: Vec::new() }
    }

    /// The days of `s` in the first of `formats` that reads it.
    #[inline]
    pub fn parse(&mut self, formats: &[DateFormat], s: &[u8]) -> Option<i32> {
        let parse = || formats.iter().find_map(|f| f.parse_date(s));
        if s.is_empty() || s.len() > 15 || self.slots.is_empty() {
            return parse();
        }
        let n = s.len();
        let key = if n >= 8 {
            // two overlapping words instead of a copy of n bytes
            let first = u64::from_le_bytes(s[..8].try_into().unwrap_or_default());
            let last = u64::from_le_bytes(s[n - 8..].try_into().unwrap_or_default());
            u128::from(first) | u128::from(last) << (8 * (n - 8))
        } else {
            let mut key = [0u8; 16];
            key[..n].copy_from_slice(s);
            u128::from_le_bytes(key)
        } | (n as u128) << 120;
        let h = (key as u64 ^ (key >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let slot = &mut self.slots[(h >> 52) as usize & (DATE_CACHE_SLOTS - 1)];
        if slot.0 == key {
            return slot.1;
        }
        let days = parse();
        *slot = (key, days);
        days
    }
}

const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

#[derive(Default)]
struct Parts {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
}

fn digits(s: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<u32> {
    let start = *pos;
    let mut v = 0u32;
    while *pos < s.len() && *pos - start < max && s[*pos].is_ascii_digit() {
        v = v * 10 + (s[*pos] - b'0') as u32;
        *pos += 1;
    }
    if *pos - start < min {
        return None;
    }
    Some(v)
}

/// Two formats of one column that differ only by the order of day and month.
pub fn day_month_conflict(formats: &[DateFormat]) -> Option<(String, String)> {
    for (i, a) in formats.iter().enumerate() {
        let Some(sw) = a.swapped() else { continue };
        if sw == a.items {
            continue;
        }
        for b in &formats[i + 1..] {
            if b.items == sw {
                return Some((a.text.clone(), b.text.clone()));
            }
        }
    }
    None
}

/// Days since 1970-01-01 of a proleptic Gregorian date, if it exists.
pub fn days_from_civil(y: i32, m: u32, d: u32) -> Option<i32> {
    // The years of most exports by table: their first day and whether they are leap years.
    if let Some(&year) = usize::try_from(y - TABLE_FROM)
        .ok()
        .and_then(|i| YEAR_STARTS.get(i))
        && (1..=12).contains(&m)
    {
        let leap = year & 1;
        let m = m as usize - 1;
        let len = MONTH_DAYS[m] + if m == 1 { leap as u32 } else { 0 };
        if d == 0 || d > len {
            return None;
        }
        let after_feb = if m >= 2 { leap } else { 0 };
        return Some((year >> 1) + MONTH_STARTS[m] + after_feb + d as i32 - 1);
    }
    days_from_civil_computed(y, m, d)
}

/// First year of [`YEAR_STARTS`].
const TABLE_FROM: i32 = 1900;
/// Days of each month, February of a common year.
const MONTH_DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
/// Days before each month in a common year.
const MONTH_STARTS: [i32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
/// For each year from [`TABLE_FROM`]: its first day (days since 1970-01-01) shifted left by
/// one, with the low bit set for a leap year.
static YEAR_STARTS: [i32; 256] = {
    let mut t = [0i32; 256];
    let mut i = 0;
    let mut days = -25_567; // 1900-01-01
    while i < 256 {
        let y = TABLE_FROM + i as i32;
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        t[i] = days << 1 | leap as i32;
        days += if leap { 366 } else { 365 };
        i += 1;
    }
    t
};

/// [`days_from_civil`] by arithmetic, for any year.
fn days_from_civil_computed(y: i32, m: u32, d: u32) -> Option<i32> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    // Howard Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe as i32 - 719_468)
}

/// (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Formats days since the epoch as `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Formats epoch milliseconds as `YYYY-MM-DD HH:MM:SS[.mmm]`.
pub fn format_timestamp_millis(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (h, mi, s, f) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    let date = format_date(days as i32);
    if f == 0 {
        format!("{date} {h:02}:{mi:02}:{s:02}")
    } else {
        format!("{date} {h:02}:{mi:02}:{s:02}.{f:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(f: &str, s: &str) -> Option<String> {
        DateFormat::compile(f, false)
            .unwrap()
            .parse_date(s.as_bytes())
            .map(format_date)
    }

    fn ts(f: &str, s: &str) -> Option<String> {
        DateFormat::compile(f, true)
            .unwrap()
            .parse_timestamp_millis(s.as_bytes())
            .map(format_timestamp_millis)
    }

    #[test]
    fn cached_dates_are_the_parsed_ones() {
        let formats = [
            DateFormat::compile("%d/%m/%Y", false).unwrap(),
            DateFormat::compile("%Y-%m-%d", false).unwrap(),
        ];
        let mut cache = DateCache::default();
        for _ in 0..2 {
            for v in [
                "03/04/2024",
                "2024-04-03",
                "31/02/2024",
                "",
                "3/4/2024",
                "2024-04-03T00:00:00",
            ] {
                let direct = formats.iter().find_map(|f| f.parse_date(v.as_bytes()));
                assert_eq!(cache.parse(&formats, v.as_bytes()), direct, "{v:?}");
            }
        }
        // the empty key slot never matches a real text
        assert_eq!(cache.parse(&formats, b"\0"), None);
    }

    #[test]
    fn the_year_table_agrees_with_the_arithmetic() {
        for y in TABLE_FROM - 2..TABLE_FROM + 258 {
            for m in 0..=13 {
                for d in 0..=32 {
                    assert_eq!(
                        days_from_civil(y, m, d),
                        days_from_civil_computed(y, m, d),
                        "{y}-{m}-{d}"
                    );
                }
            }
        }
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 2, 29), Some(11_016));
        assert_eq!(days_from_civil(1900, 2, 29), None);
        assert_eq!(days_from_civil(2100, 2, 29), None);
    }

    #[test]
    fn fixed_layout_fast_path_agrees_with_the_general_parser() {
        let mut values: Vec<String> = Vec::new();
        for y in [1900, 1999, 2000, 2024, 2100] {
            for m in 0..=13 {
                for d in [0, 1, 9, 28, 29, 30, 31, 32] {
                    values.push(format!("{y:04}-{m:02}-{d:02}"));
                    values.push(format!("{d:02}/{m:02}/{y:04}"));
                    values.push(format!("{y:04}{m:02}{d:02}"));
                    values.push(format!("{d}/{m}/{y}"));
                }
            }
        }
        values.extend(
            [
                "2024-1a-01",
                "2024/01/01",
                "01-01-2024",
                "2024-01-01 ",
                " 2024-01-01",
                "",
                "2024-01-0",
                "20240101x",
                "+024-01-01",
                "2024-\u{e9}1-01",
            ]
            .map(String::from),
        );
        // every byte of valid dates replaced by every other byte (the word-at-once checks)
        for base in [
            "2024-02-29",
            "29/02/2024",
            "20240229",
            "1999-12-31",
            "31/12/1999",
        ] {
            for at in 0..base.len() {
                for b in 0..=255u8 {
                    let mut v = base.as_bytes().to_vec();
                    v[at] = b;
                    if let Ok(v) = String::from_utf8(v) {
                        values.push(v);
                    }
                }
            }
        }
        for f in [
            "%Y-%m-%d",
            "%d/%m/%Y",
            "%m/%d/%Y",
            "%Y%m%d",
            "%d.%m.%Y",
            "%Y/%m/%d",
            "%Y--%m--%d--",
            "%Y---%m---%d---",
        ] {
            let fmt = DateFormat::compile(f, false).unwrap();
            let Some(fixed) = &fmt.fixed else {
                panic!("{f} has a fixed layout")
            };
            assert_eq!(
                fixed.shape == Shape::Other,
                fixed.len != 10,
                "{f}: ten-byte layouts have their own path"
            );
            for v in &values {
                let general = fmt
                    .parse_parts(v.as_bytes())
                    .and_then(|p| days_from_civil(p.year, p.month, p.day));
                assert_eq!(fmt.parse_date(v.as_bytes()), general, "{f} on {v:?}");
            }
        }
        assert!(
            DateFormat::compile("%d %b %Y", false)
                .unwrap()
                .fixed
                .is_none()
        );
    }

    #[test]
    fn day_first_is_honoured_never_swapped() {
        assert_eq!(d("%d/%m/%Y", "03/04/2024").as_deref(), Some("2024-04-03"));
        assert_eq!(d("%d/%m/%Y", "27/06/2020").as_deref(), Some("2020-06-27"));
        assert_eq!(d("%m/%d/%Y", "07/01/2019").as_deref(), Some("2019-07-01"));
        // Month 13 is not silently taken as a day.
        assert_eq!(d("%m/%d/%Y", "13/01/2019"), None);
        assert_eq!(d("%d/%m/%Y", "01/13/2019"), None);
    }

    #[test]
    fn unpadded_and_compact_forms() {
        assert_eq!(d("%m/%d/%Y", "4/1/2026").as_deref(), Some("2026-04-01"));
        assert_eq!(d("%Y%m%d", "19740401").as_deref(), Some("1974-04-01"));
        assert_eq!(d("%Y%m%d", "1974041"), None);
        assert_eq!(d("%Y-%m-%d", "2020-03-18").as_deref(), Some("2020-03-18"));
        assert_eq!(d("%Y-%m-%d", "2020-03-18 "), None);
        assert_eq!(d("%b/%Y/%d", "jAN/2007/1").as_deref(), Some("2007-01-01"));
    }

    #[test]
    fn calendar_is_checked() {
        assert_eq!(d("%Y-%m-%d", "2023-02-29"), None);
        assert_eq!(d("%Y-%m-%d", "2024-02-29").as_deref(), Some("2024-02-29"));
        assert_eq!(d("%Y-%m-%d", "1900-02-29"), None);
        assert_eq!(d("%Y-%m-%d", "2000-02-29").as_deref(), Some("2000-02-29"));
        assert_eq!(d("%Y-%m-%d", "2020-04-31"), None);
        assert_eq!(d("%Y-%m-%d", "2020-00-10"), None);
    }

    #[test]
    fn timestamps_in_millis() {
        assert_eq!(
            ts("%d/%m/%Y %H:%M:%S", "16/01/2024 17:12:03").as_deref(),
            Some("2024-01-16 17:12:03")
        );
        assert_eq!(
            ts("%Y-%m-%d %H:%M:%S", "2146-07-21 00:00:00").as_deref(),
            Some("2146-07-21 00:00:00")
        );
        assert_eq!(
            ts("%Y-%m-%d %H:%M:%S.%f", "2020-01-01 10:00:00.5").as_deref(),
            Some("2020-01-01 10:00:00.500")
        );
        assert_eq!(
            ts("%Y-%m-%d %H:%M:%S.%f", "2020-01-01 10:00:00.123456").as_deref(),
            Some("2020-01-01 10:00:00.123")
        );
        assert_eq!(ts("%Y-%m-%d %H:%M:%S", "2020-01-01 24:00:00"), None);
        assert_eq!(ts("%Y-%m-%d %H:%M", "2020-01-01 10:61"), None);
        let f = DateFormat::compile("%Y-%m-%dT%H:%M:%S", true).unwrap();
        assert_eq!(f.parse_timestamp_millis(b"1970-01-01T00:00:01"), Some(1000));
        assert_eq!(
            f.parse_timestamp_millis(b"1969-12-31T23:59:59"),
            Some(-1000)
        );
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!(DateFormat::compile("%Y-%m", false).is_err());
        assert!(DateFormat::compile("%Y-%m-%d %H", false).is_err());
        assert!(DateFormat::compile("%Y-%m-%d %Q", false).is_err());
        assert!(DateFormat::compile("%Y-%m-%d%", false).is_err());
    }

    #[test]
    fn swapped_pairs_detected() {
        let f = |s: &str| DateFormat::compile(s, true).unwrap();
        assert!(day_month_conflict(&[f("%d/%m/%Y"), f("%m/%d/%Y")]).is_some());
        assert!(day_month_conflict(&[f("%d/%m/%Y"), f("%Y-%m-%d")]).is_none());
        assert!(day_month_conflict(&[f("%Y-%m-%d"), f("%Y-%d-%m")]).is_some());
    }

    #[test]
    fn civil_round_trip() {
        for days in [-1_000_000, -719_468, -1, 0, 1, 18_000, 65_000, 2_932_896] {
            let (y, m, dd) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, dd), Some(days), "{days}");
        }
    }
}
