//! Validity bitmaps read 64 rows at a time.
//!
//! A column's validity bitmap (bit `i % 8` of byte `i / 8` set: row `i` is not null, `None`:
//! no row is null) is read here a word at a time, so that a loop over the non-null rows of a
//! range costs a few instructions per word of rows, not a bit test per row. It owns reading
//! only: the bitmaps are built by [`crate::columns::Column`].

/// Bits `64 * w .. 64 * w + 64` of `bits`, bit 0 first (bytes past the end read as zeros).
#[inline]
pub fn word(bits: &[u8], w: usize) -> u64 {
    let at = w * 8;
    match bits.get(at..at + 8) {
        Some(b) => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        None => {
            let mut b = [0u8; 8];
            let tail = bits.get(at..).unwrap_or_default();
            b[..tail.len()].copy_from_slice(tail);
            u64::from_le_bytes(b)
        }
    }
}

/// The words covering rows `a..b` (all ones without a bitmap), each with its first row and
/// only the bits of `a..b` kept.
#[inline]
fn words(valid: Option<&[u8]>, a: usize, b: usize) -> impl Iterator<Item = (usize, u64)> + '_ {
    (a / 64..b.div_ceil(64)).map(move |w| {
        let base = w * 64;
        let mut x = valid.map_or(u64::MAX, |bits| word(bits, w));
        if base < a {
            x &= u64::MAX << (a - base);
        }
        if b - base < 64 {
            x &= (1u64 << (b - base)) - 1;
        }
        (base, x)
    })
}

/// How many of rows `a..b` are not null.
#[inline]
pub fn count(valid: Option<&[u8]>, a: usize, b: usize) -> usize {
    match valid {
        None => b - a,
        Some(_) => words(valid, a, b)
            .map(|(_, x)| x.count_ones() as usize)
            .sum(),
    }
}

/// Calls `f` with every row of `a..b` that is not null, in order. `f` is called from one
/// place (so that it is inlined), for pages with nulls and without alike.
#[inline]
pub fn for_each(valid: Option<&[u8]>, a: usize, b: usize, mut f: impl FnMut(usize)) {
    for (base, mut x) in words(valid, a, b) {
        while x != 0 {
            f(base + x.trailing_zeros() as usize);
            x &= x - 1;
        }
    }
}

/// The eight bits of rows `i .. i + 8` as one byte, row `i` in bit 0 (rows past the end of the
/// bitmap read as null).
#[inline]
pub fn byte_at(bits: &[u8], i: usize) -> u8 {
    let (at, shift) = (i / 8, i % 8);
    let lo = u16::from(bits.get(at).copied().unwrap_or(0));
    let hi = u16::from(bits.get(at + 1).copied().unwrap_or(0));
    ((lo | hi << 8) >> shift) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name and which rows are not null.
    type Pattern = (&'static str, fn(usize) -> bool);

    fn bitmap(rows: usize, valid: impl Fn(usize) -> bool) -> Vec<u8> {
        let mut bits = vec![0u8; rows.div_ceil(8)];
        for i in (0..rows).filter(|&i| valid(i)) {
            bits[i / 8] |= 1 << (i % 8);
        }
        bits
    }

    fn slow(bits: &[u8], a: usize, b: usize) -> Vec<usize> {
        (a..b)
            .filter(|&i| bits[i / 8] & (1 << (i % 8)) != 0)
            .collect()
    }

    #[test]
    fn rows_match_a_bit_test_per_row() {
        let patterns: [Pattern; 6] = [
            ("none null", |_| true),
            ("all null", |_| false),
            ("every third", |i| i % 3 != 0),
            ("one at 63", |i| i != 63),
            ("only 64", |i| i == 64),
            ("around 64", |i| !(63..=65).contains(&i)),
        ];
        let rows = 200;
        for (name, p) in patterns {
            let bits = bitmap(rows, p);
            for (a, b) in [
                (0, rows),
                (0, 63),
                (0, 64),
                (0, 65),
                (63, 65),
                (64, 64),
                (1, 199),
                (65, 130),
                (127, 129),
                (190, 200),
            ] {
                let want = slow(&bits, a, b);
                let mut got = Vec::new();
                for_each(Some(&bits), a, b, |i| got.push(i));
                assert_eq!(got, want, "{name}, rows {a}..{b}");
                assert_eq!(count(Some(&bits), a, b), want.len(), "{name}, {a}..{b}");
            }
        }
        let mut got = Vec::new();
        for_each(None, 3, 9, |i| got.push(i));
        assert_eq!(got, (3..9).collect::<Vec<_>>());
        assert_eq!(count(None, 3, 9), 6);
    }

    #[test]
    fn bytes_at_any_row_match_the_bits() {
        let bits = bitmap(77, |i| (i * 7) % 5 < 2);
        for i in 0..77 {
            let want = (0..8)
                .filter(|k| i + k < 77 && bits[(i + k) / 8] & (1 << ((i + k) % 8)) != 0)
                .fold(0u8, |acc, k| acc | 1 << k);
            assert_eq!(byte_at(&bits, i), want, "row {i}");
        }
    }
}
