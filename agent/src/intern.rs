//! Distinct text values of one column, shared by every partition's buffer.
//!
//! Most text columns of an export repeat a few values (a sex, a region code, a city, an insurer)
//! across all partitions. An [`Interner`] keeps each distinct value once, and a partition's buffer
//! holds a 4-byte number per value instead of the value and its offset: fewer bytes written into
//! buffers spread over the whole budget, and no hashing of each value again when its page is
//! encoded (see [`crate::columns::Column::localize`]). It is bounded: past its byte limit it keeps
//! answering for the values it has, new values stay in the buffer that received them, and when
//! most lookups then miss (a column of mostly distinct values) it stops looking. It does not
//! decide encodings: the chunk writer does, from the values of each row group.

/// Longest value kept (longer ones stay in their buffer: free text rarely repeats).
pub const MAX_VALUE_BYTES: usize = 128;
/// Bytes an entry costs besides its value (offset, 24-byte hash slot and its control byte,
/// the table's slack).
const ENTRY_OVERHEAD: usize = 36;
/// Lookups between two looks at the miss rate of a full interner.
const WINDOW: u32 = 1 << 16;
/// Entries of the front cache (a power of two): 6 KiB, which stays in the L1 cache while a
/// column is parsed.
const FRONT: usize = 256;
const FRONT_BYTES: usize = FRONT * std::mem::size_of::<Slot>();

/// The distinct values of one text column, numbered from 0 in order of first appearance.
#[derive(Debug)]
pub struct Interner {
    /// The numbers by hash, each with the value's first 16 bytes (zero-padded) and length: a
    /// value of 16 bytes or less is found without looking at `data`.
    table: hashbrown::HashTable<Slot>,
    /// Value `k` is `data[offsets[k]..offsets[k + 1]]`.
    offsets: Vec<u32>,
    data: Vec<u8>,
    limit: usize,
    full: bool,
    enabled: bool,
    /// Lookups and misses since the interner became full (in the current window).
    lookups: u32,
    misses: u32,
    /// The last value of at most 16 bytes found for each of [`FRONT`] hash buckets: a column
    /// of a few distinct values (a sex, a region, an insurer) is answered from here without
    /// probing the table.
    front: Box<[Slot; FRONT]>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    a: u64,
    b: u64,
    len: u32,
    id: u32,
}

impl Interner {
    /// An empty interner holding at most about `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            table: hashbrown::HashTable::new(),
            offsets: vec![0],
            data: Vec::new(),
            limit,
            full: false,
            enabled: true,
            lookups: 0,
            misses: 0,
            front: Box::new(
                [Slot {
                    a: 0,
                    b: 0,
                    len: u32::MAX,
                    id: 0,
                }; FRONT],
            ),
        }
    }

    /// Number of distinct values held.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it still looks values up (false: every value stays in its buffer).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Value number `k`.
    #[inline]
    pub fn get(&self, k: u32) -> &[u8] {
        let k = k as usize;
        &self.data[self.offsets[k] as usize..self.offsets[k + 1] as usize]
    }

    /// Bytes allocated.
    pub fn allocated_bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<Slot>() + 1)
            + self.offsets.capacity() * 4
            + self.data.capacity()
            + FRONT_BYTES
    }

    /// The number of `v`, adding it when new; None when `v` stays in its buffer (too long, or
    /// the interner is full or has stopped looking).
    pub fn intern(&mut self, v: &[u8]) -> Option<u32> {
        self.intern_within(v, 0, v.len())
    }

    /// [`Interner::intern`] of `buf[start..end]`, reading the 16 bytes from `start` at once
    /// when `buf` has them.
    #[inline(always)]
    pub fn intern_within(&mut self, buf: &[u8], start: usize, end: usize) -> Option<u32> {
        let n = end - start;
        if !self.enabled || n > MAX_VALUE_BYTES {
            return None;
        }
        // two fixed-size loads when `buf` has the 16 bytes (a variable-length copy into a
        // zeroed array would be one call to `memcpy` per value)
        let (a, b) = match buf.get(start..start + 16) {
            Some(c) => prefix(
                u64::from_le_bytes(c[..8].try_into().unwrap_or_default()),
                u64::from_le_bytes(c[8..].try_into().unwrap_or_default()),
                n,
            ),
            None => prefix_at_end(&buf[start..end]),
        };
        let v = &buf[start..end];
        let h = if n <= 16 {
            let h = short_hash(a, b, n);
            let f = self.front[(h >> 56) as usize % FRONT];
            if f.len as usize == n && f.a == a && f.b == b {
                if self.full {
                    return self.count_full(Some(f.id));
                }
                return Some(f.id);
            }
            h
        } else {
            hash_text(v)
        };
        let (offsets, data) = (&self.offsets, &self.data);
        let found = self.table.find(h, |s| {
            s.len as usize == n
                && s.a == a
                && s.b == b
                && (n <= 16
                    || &data[offsets[s.id as usize] as usize..offsets[s.id as usize + 1] as usize]
                        == v)
        });
        if let Some(&s) = found
            && n <= 16
        {
            self.front[(h >> 56) as usize % FRONT] = s;
        }
        let found = found.map(|s| s.id);
        if self.full {
            return self.count_full(found);
        }
        if found.is_some() {
            return found;
        }
        let k = self.len() as u32;
        self.data.extend_from_slice(v);
        self.offsets.push(self.data.len() as u32);
        let (offsets, data) = (&self.offsets, &self.data);
        let slot = Slot {
            a,
            b,
            len: n as u32,
            id: k,
        };
        if n <= 16 {
            self.front[(h >> 56) as usize % FRONT] = slot;
        }
        self.table.insert_unique(h, slot, |s| {
            let n = s.len as usize;
            if n <= 16 {
                short_hash(s.a, s.b, n)
            } else {
                let i = s.id as usize;
                hash_text(&data[offsets[i] as usize..offsets[i + 1] as usize])
            }
        });
        if FRONT_BYTES + self.data.len() + self.len() * ENTRY_OVERHEAD >= self.limit {
            self.full = true;
        }
        Some(k)
    }

    /// A lookup in a full interner: when most of a window's lookups missed, it stops looking.
    #[cold]
    fn count_full(&mut self, found: Option<u32>) -> Option<u32> {
        self.lookups += 1;
        self.misses += u32::from(found.is_none());
        if self.lookups == WINDOW {
            if self.misses * 2 > self.lookups {
                self.enabled = false;
                self.table = hashbrown::HashTable::new();
            }
            self.lookups = 0;
            self.misses = 0;
        }
        found
    }
}

/// The first 16 bytes of a value of `n` bytes, zero-padded, as two words, from the 16 bytes at
/// its start read as two words `a` and `b`.
#[inline]
fn prefix(a: u64, b: u64, n: usize) -> (u64, u64) {
    let mask = |k: usize| match k {
        0 => 0,
        1..=7 => (1u64 << (8 * k)) - 1,
        _ => u64::MAX,
    };
    if n >= 8 {
        (a, b & mask(n - 8))
    } else {
        (a & mask(n), 0)
    }
}

/// [`prefix`] of a value with fewer than 16 readable bytes from its start.
#[cold]
#[inline(never)]
fn prefix_at_end(v: &[u8]) -> (u64, u64) {
    let mut w = [0u8; 16];
    let k = v.len().min(16);
    w[..k].copy_from_slice(&v[..k]);
    prefix(
        u64::from_le_bytes(w[..8].try_into().unwrap_or_default()),
        u64::from_le_bytes(w[8..].try_into().unwrap_or_default()),
        v.len(),
    )
}

/// The hash of a value of at most 16 bytes, from its zero-padded words and length.
#[inline]
fn short_hash(a: u64, b: u64, n: usize) -> u64 {
    fold(
        a ^ 0x9E37_79B9_7F4A_7C15 ^ n as u64,
        b ^ 0xD6E8_FEB8_6659_FD93,
    )
}

/// A fast hash of a short byte string (the values of a text column are mostly a few bytes).
#[inline]
pub fn hash_text(v: &[u8]) -> u64 {
    const K0: u64 = 0x9E37_79B9_7F4A_7C15;
    const K1: u64 = 0xD6E8_FEB8_6659_FD93;
    let n = v.len();
    let word = |i: usize| u64::from_le_bytes(v[i..i + 8].try_into().unwrap_or([0; 8]));
    let (mut a, mut b) = if n >= 8 {
        (word(0), word(n - 8))
    } else if n >= 4 {
        let w = |i: usize| u32::from_le_bytes(v[i..i + 4].try_into().unwrap_or([0; 4])) as u64;
        (w(0), w(n - 4))
    } else if n > 0 {
        (
            v[0] as u64 | (v[n / 2] as u64) << 8 | (v[n - 1] as u64) << 16,
            0,
        )
    } else {
        (0, 0)
    };
    let mut i = 8;
    while i + 8 < n {
        a = fold(a ^ K0, word(i) ^ K1);
        i += 8;
    }
    b ^= n as u64;
    fold(a ^ K1, b ^ K0)
}

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let m = (a as u128).wrapping_mul(b as u128);
    (m as u64) ^ ((m >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_numbered_once_in_order_of_first_appearance() {
        let mut i = Interner::new(1 << 20);
        let words = ["M", "F", "", "M", "Saint-Étienne", "F", "01", "1", "01"];
        let ids: Vec<u32> = words
            .iter()
            .map(|w| i.intern(w.as_bytes()).unwrap())
            .collect();
        assert_eq!(ids, [0, 1, 2, 0, 3, 1, 4, 5, 4]);
        assert_eq!(i.len(), 6);
        for (w, k) in words.iter().zip(&ids) {
            assert_eq!(i.get(*k), w.as_bytes());
        }
    }

    #[test]
    fn long_values_stay_out() {
        let mut i = Interner::new(1 << 20);
        assert_eq!(i.intern(&[b'x'; MAX_VALUE_BYTES + 1]), None);
        assert_eq!(i.intern(&[b'x'; MAX_VALUE_BYTES]), Some(0));
    }

    #[test]
    fn a_full_interner_answers_for_what_it_has_then_stops_when_lookups_miss() {
        let mut i = Interner::new(64 * 1024);
        let mut n = 0u32;
        while !i.full {
            assert_eq!(i.intern(format!("P{n:010}").as_bytes()), Some(n));
            n += 1;
        }
        assert!(i.allocated_bytes() < 4 * 64 * 1024);
        // known values keep their numbers, new ones stay out
        assert_eq!(i.intern(b"P0000000007"), Some(7));
        assert_eq!(i.intern(b"Q"), None);
        // a window of mostly known values: still looking
        for k in 0..WINDOW {
            i.intern(format!("P{:010}", k % n).as_bytes());
        }
        assert!(i.enabled());
        // a window of mostly new values: it stops
        for k in 0..WINDOW {
            i.intern(format!("R{k}").as_bytes());
        }
        assert!(!i.enabled());
        assert_eq!(i.intern(b"P0000000007"), None);
        assert_eq!(i.get(7), b"P0000000007", "values held stay readable");
    }

    #[test]
    fn values_are_found_whatever_bytes_follow_them() {
        // the same values inside buffers with and without 16 readable bytes after them, and
        // values that differ only past a zero byte or in their length
        let mut i = Interner::new(1 << 20);
        let values: Vec<Vec<u8>> = (0..=40usize)
            .flat_map(|n| {
                let v: Vec<u8> = (0..n).map(|k| b'a' + (k % 26) as u8).collect();
                let mut z = v.clone();
                z.push(0);
                [v, z]
            })
            .collect();
        let ids: Vec<u32> = values.iter().map(|v| i.intern(v).unwrap()).collect();
        assert_eq!(i.len(), values.len(), "every value is distinct");
        for (v, &id) in values.iter().zip(&ids) {
            let mut buf = b"xx".to_vec();
            buf.extend_from_slice(v);
            buf.extend_from_slice(b"yyyyyyyyyyyyyyyyyy");
            assert_eq!(i.intern_within(&buf, 2, 2 + v.len()), Some(id));
            assert_eq!(
                i.intern_within(&buf[..2 + v.len()], 2, 2 + v.len()),
                Some(id)
            );
            assert_eq!(i.get(id), v.as_slice());
        }
    }

    #[test]
    fn the_hash_tells_apart_values_of_every_length() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..40 {
            for b in [b'a', b'b'] {
                let mut v = vec![b'a'; n];
                if n > 0 {
                    v[n / 3] = b;
                }
                seen.insert(hash_text(&v));
            }
        }
        // lengths 1..40 with two variants each, plus the empty string
        assert_eq!(seen.len(), 1 + 39 * 2);
    }
}
