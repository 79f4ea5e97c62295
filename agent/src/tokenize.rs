//! CSV tokenizing: the records and fields of a decoded export.
//!
//! The rules are those of the `csv` crate's reader with `flexible(true)`, `double_quote(true)` and
//! no escape or comment character, byte for byte (a test compares the two on generated input):
//! a field that starts with the quote character is quoted and may hold delimiters, line breaks
//! and doubled quotes; a quote anywhere else is an ordinary character; text after a closing
//! quote joins the field (`"ab"cd` is `abcd`); `\n`, `\r` and `\r\n` end a record; empty lines
//! are skipped; the last record needs no line break. Three things differ on purpose: a quote
//! still open at the end of the input is an error (the `csv` crate makes the rest of the file
//! one value, silently swallowing every row after a stray quote); a record reports the line where it starts (the
//! `csv` crate reports the line after the previous record, which is wrong after blank lines),
//! and a record larger than [`MAX_RECORD_BYTES`] is an error (an unclosed quote in a large export
//! would otherwise read the rest of the file into memory).
//!
//! Unquoted fields, most of any export, are found 64 bytes at a time where the CPU has AVX2
//! (bitmasks of delimiters and line breaks, walked bit by bit), else eight bytes at a time; the
//! record is copied once. Quoted fields, fields that end where no whole 64-byte block of buffered
//! input is left, and unusual quote or delimiter bytes take the eight-byte path, which states the
//! rules. It does not decode text or interpret values.

use std::io::{self, Read};
use std::ops::Range;

/// Largest record accepted, in bytes.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// Bytes read from the source at a time.
const CHUNK: usize = 1 << 20;
/// Marks a field bound that lies in the record's unescaped area rather than its raw bytes.
const EXTRA: u32 = 1 << 31;

/// Zero bytes after a record's own in [`Record::padded`].
pub const RECORD_PADDING: usize = 16;

/// One record: its fields' bytes and bounds, and the line it starts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The record's bytes, then [`RECORD_PADDING`] zeros (once read).
    buf: Vec<u8>,
    /// Bytes of the record in `buf`.
    used: usize,
    bounds: Vec<(u32, u32)>,
    line: u64,
    utf8: bool,
}

impl Record {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds.is_empty()
    }

    /// 1-based line of the record's first byte.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Whether the tokenizer already found every byte of the record to be valid UTF-8 (see
    /// [`Tokenizer::check_utf8`]); false means not known, not invalid.
    pub fn known_utf8(&self) -> bool {
        self.utf8
    }

    /// Field `i`.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.bounds
            .get(i)
            .map(|&(a, b)| &self.buf[a as usize..b as usize])
    }

    /// Byte range of field `i` in [`Record::as_slice`].
    pub fn range(&self, i: usize) -> Option<Range<usize>> {
        self.bounds.get(i).map(|&(a, b)| a as usize..b as usize)
    }

    /// Every byte the fields lie in: the record as exported (delimiters and quotes included)
    /// followed by the unescaped text of fields with doubled quotes. It is valid UTF-8 exactly
    /// when every field is (delimiters and quotes are ASCII).
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.used]
    }

    /// [`Record::as_slice`] and the [`RECORD_PADDING`] zero bytes after it (none in a record
    /// not read by a [`Tokenizer`]): a field's first 16 bytes can be loaded at once.
    pub fn padded(&self) -> &[u8] {
        &self.buf
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.bounds
            .iter()
            .map(|&(a, b)| &self.buf[a as usize..b as usize])
    }
}

impl std::ops::Index<usize> for Record {
    type Output = [u8];

    fn index(&self, i: usize) -> &[u8] {
        let (a, b) = self.bounds[i];
        &self.buf[a as usize..b as usize]
    }
}

/// Records of one width read together by [`Tokenizer::read_block`], stored a column at a time:
/// the values of each field one after another, so that a caller going through the records a
/// column at a time reads only the bytes of that column, in order.
#[derive(Debug)]
pub struct Block {
    width: usize,
    delimiter: u8,
    cols: Vec<BlockColumn>,
    lines: Vec<u64>,
    utf8: Vec<bool>,
    /// Bytes of the records as exported.
    raw_bytes: usize,
    /// A record of another width (a broken export, or a blank line), alone in its block.
    odd: Record,
    has_odd: bool,
}

#[derive(Debug, Default)]
struct BlockColumn {
    /// The values, then [`RECORD_PADDING`] zeros.
    data: Vec<u8>,
    /// Value `i` is `data[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
}

impl Block {
    /// A block for records of `width` fields (the header's), read with `delimiter`.
    pub fn new(width: usize, delimiter: u8) -> Self {
        Self {
            width,
            delimiter,
            cols: (0..width).map(|_| BlockColumn::default()).collect(),
            lines: Vec::new(),
            utf8: Vec::new(),
            raw_bytes: 0,
            odd: Record::new(),
            has_odd: false,
        }
    }

    /// Number of records of the block's width.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn clear(&mut self) {
        for c in &mut self.cols {
            c.data.clear();
            c.starts.clear();
            c.starts.push(0);
        }
        self.lines.clear();
        self.utf8.clear();
        self.raw_bytes = 0;
        self.has_odd = false;
    }

    /// The values of field `j` of every record (`starts` holds one more entry than there are
    /// records), in a buffer with [`RECORD_PADDING`] readable bytes after its last value.
    #[inline]
    pub fn column(&self, j: usize) -> (&[u8], &[u32]) {
        let c = &self.cols[j];
        (&c.data, &c.starts)
    }

    /// Field `j` of record `i`.
    pub fn field(&self, i: usize, j: usize) -> &[u8] {
        let c = &self.cols[j];
        &c.data[c.starts[i] as usize..c.starts[i + 1] as usize]
    }

    /// 1-based line of record `i`'s first byte.
    pub fn line(&self, i: usize) -> u64 {
        self.lines[i]
    }

    /// Whether every record is known to be UTF-8 (see [`Record::known_utf8`]).
    pub fn known_utf8(&self) -> bool {
        self.utf8.iter().all(|&u| u)
    }

    /// Record `i` on its own: its fields joined by the delimiter (so that `as_slice` is valid
    /// UTF-8 exactly when the record is).
    pub fn record(&self, i: usize) -> Record {
        let mut rec = Record::new();
        for (j, c) in self.cols.iter().enumerate() {
            if j > 0 {
                rec.buf.push(self.delimiter);
            }
            let a = rec.buf.len() as u32;
            rec.buf
                .extend_from_slice(&c.data[c.starts[i] as usize..c.starts[i + 1] as usize]);
            rec.bounds.push((a, rec.buf.len() as u32));
        }
        rec.used = rec.buf.len();
        rec.buf.extend_from_slice(&[0; RECORD_PADDING]);
        rec.line = self.lines[i];
        rec.utf8 = self.utf8[i];
        rec
    }

    /// The record of another width that ended the block, if that is what was read (the block
    /// then holds no other record).
    pub fn odd(&self) -> Option<&Record> {
        self.has_odd.then_some(&self.odd)
    }
}

/// A failure to read the next record, with the line it starts on.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("line {line}: {source}")]
    Io { line: u64, source: io::Error },
    #[error(
        "line {line}: a record longer than {max} bytes (an unclosed quote runs through the rest of the file?)",
        max = MAX_RECORD_BYTES
    )]
    TooLong { line: u64 },
    #[error(
        "line {line}: field {field} opens a quote that is never closed (the rest of the file would be one value)"
    )]
    Unclosed { line: u64, field: usize },
}

impl TokenizeError {
    pub fn line(&self) -> u64 {
        match self {
            Self::Io { line, .. } | Self::TooLong { line } | Self::Unclosed { line, .. } => *line,
        }
    }
}

/// Reads records from a byte stream.
pub struct Tokenizer<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// Line of `buf[pos]`.
    line: u64,
    delim: u8,
    quote: u8,
    extra: Vec<u8>,
    /// Whether to check UTF-8 as bytes arrive ([`Tokenizer::check_utf8`]).
    check_utf8: bool,
    /// `buf[pos..utf8_to]` is known to be valid UTF-8: checked in large runs as bytes arrive,
    /// which costs far less than checking record by record. The check stops at a bad byte and
    /// starts again after the record holding it.
    utf8_to: usize,
    /// Whether unquoted fields are found with AVX2 ([`avx2::usable`]); the scalar path else.
    avx2: bool,
    /// An error met by [`Tokenizer::read_block`] after the records it returned, for the next
    /// call.
    pending: Option<TokenizeError>,
    /// The field bounds of the record being read.
    bounds: Vec<(u32, u32)>,
}

/// A record parsed at `Tokenizer::pos`: its raw bytes end at `end`, the next record may start
/// at `next`, and `newlines` lie in between.
struct NextRecord {
    end: usize,
    next: usize,
    newlines: u64,
}

/// How far the parse of a record got.
enum Parsed {
    /// Complete: raw bytes `[start, end)`, then `next` is where the following record may start,
    /// and `newlines` were passed.
    Done {
        end: usize,
        next: usize,
        newlines: u64,
    },
    /// The buffer ended inside the record.
    NeedMore,
    /// The input ended inside the quoted field number `field` (1-based).
    Unclosed { field: usize },
}

#[inline]
fn repeat(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

/// Bit 7 of each byte of the result is set where `x` has a zero byte; the lowest set bit is
/// always right (higher ones may be false positives, never used).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(repeat(1)) & !x & repeat(0x80)
}

/// Where [`avx2::scan`] stopped.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Scan {
    /// The last field pushed ended at this line break.
    LineEnd(usize),
    /// A field starts here and was not pushed: it is quoted, starts at the end of the buffer, or
    /// did not end before fewer than 64 bytes were left (the scalar path reads those).
    Field(usize),
}

/// Unquoted fields found 64 bytes at a time with AVX2: the delimiters and line breaks of a block
/// as the bits of two `u64`s, walked with `trailing_zeros`.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Scan;
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };

    /// Whether [`scan`] may be used: the CPU has AVX2, and the delimiter and quote are distinct
    /// bytes other than the line breaks (the contract ensures it; in any other case only the
    /// scalar path knows what the bytes mean).
    pub(super) fn usable(delim: u8, quote: u8) -> bool {
        delim != quote
            && ![delim, quote].iter().any(|b| matches!(b, b'\n' | b'\r'))
            && std::arch::is_x86_feature_detected!("avx2")
    }

    /// Pushes the bounds (relative to `start`) of the unquoted fields from `i`, a field start in
    /// `buf` that is not the quote, up to a line break or to a field left to the scalar path; None
    /// if the CPU has no AVX2. Each delimiter or line break ends a field and the byte after a
    /// delimiter starts the next one; a quote anywhere else is ordinary text: what the scalar path
    /// finds in the same bytes, for a delimiter and quote that pass [`usable`].
    #[inline]
    #[allow(unsafe_code)]
    pub(super) fn scan(
        buf: &[u8],
        start: usize,
        i: usize,
        d: u8,
        q: u8,
        bounds: &mut Vec<(u32, u32)>,
    ) -> Option<Scan> {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return None;
        }
        // SAFETY: the CPU has AVX2 (checked just above; the answer is cached, so this costs a
        // load), the only feature `scan_unquoted` is compiled for.
        Some(unsafe { scan_unquoted(buf, start, i, d, q, bounds) })
    }

    #[target_feature(enable = "avx2")]
    fn scan_unquoted(
        buf: &[u8],
        start: usize,
        mut i: usize,
        d: u8,
        q: u8,
        bounds: &mut Vec<(u32, u32)>,
    ) -> Scan {
        let vd = _mm256_set1_epi8(d as i8);
        let vq = _mm256_set1_epi8(q as i8);
        let vn = _mm256_set1_epi8(b'\n' as i8);
        let vr = _mm256_set1_epi8(b'\r' as i8);
        // Bit k of each result: byte k of the 32 is the delimiter; the quote; a line break.
        let classify = |v: __m256i| {
            let bits = |m: __m256i| _mm256_movemask_epi8(m) as u32 as u64;
            let delims = bits(_mm256_cmpeq_epi8(v, vd));
            let quotes = bits(_mm256_cmpeq_epi8(v, vq));
            let breaks = bits(_mm256_or_si256(
                _mm256_cmpeq_epi8(v, vn),
                _mm256_cmpeq_epi8(v, vr),
            ));
            (delims, quotes, breaks)
        };
        // A local Vec is quicker to push to: its length need not be stored through `bounds`.
        let mut out = std::mem::take(bounds);
        let scan = 'scan: {
            // Bits below the field start are clear: `base` starts at `i` and then moves past
            // every bit walked.
            let mut base = i;
            while let Some(block) = buf.get(base..).and_then(<[u8]>::first_chunk::<64>) {
                let (lo, hi) = load(block);
                let (d_lo, q_lo, b_lo) = classify(lo);
                let (d_hi, q_hi, b_hi) = classify(hi);
                let delims = d_lo | d_hi << 32;
                let breaks = b_lo | b_hi << 32;
                // Field ends that need a closer look: line breaks, delimiters before a quote, and
                // a delimiter in the last byte (the next field starts in the next block, or at
                // the end of the buffer).
                let special = breaks | delims & ((q_lo | q_hi << 32) >> 1 | 1 << 63);
                let mut ends = delims | breaks;
                while ends != 0 {
                    let k = ends.trailing_zeros() as usize;
                    let stop = base + k;
                    out.push(((i - start) as u32, (stop - start) as u32));
                    i = stop + 1;
                    if special >> k & 1 != 0 {
                        if breaks >> k & 1 != 0 {
                            break 'scan Scan::LineEnd(stop);
                        }
                        match buf.get(i) {
                            Some(&c) if c != q => {}
                            _ => break 'scan Scan::Field(i),
                        }
                    }
                    ends &= ends - 1;
                }
                base += 64;
            }
            Scan::Field(i)
        };
        *bounds = out;
        scan
    }

    /// The two halves of a 64-byte block.
    #[target_feature(enable = "avx2")]
    #[allow(unsafe_code)]
    fn load(block: &[u8; 64]) -> (__m256i, __m256i) {
        let p = block.as_ptr().cast::<__m256i>();
        // SAFETY: `block` is 64 readable bytes, so the 32-byte reads at offsets 0 and 32 both lie
        // inside it; `loadu` needs no alignment; AVX2 is enabled for this function.
        unsafe { (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))) }
    }
}

/// Elsewhere the scalar path does everything.
#[cfg(not(target_arch = "x86_64"))]
mod avx2 {
    use super::Scan;

    pub(super) fn usable(_delim: u8, _quote: u8) -> bool {
        false
    }

    pub(super) fn scan(
        _buf: &[u8],
        _start: usize,
        _i: usize,
        _d: u8,
        _q: u8,
        _bounds: &mut Vec<(u32, u32)>,
    ) -> Option<Scan> {
        None
    }
}

/// Position of the first byte of `hay` equal to `a`, `b` or `c`.
#[inline]
fn find3(hay: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    let (ra, rb, rc) = (repeat(a), repeat(b), repeat(c));
    let mut i = 0;
    while let Some(w) = hay.get(i..i + 8) {
        let Ok(w) = <[u8; 8]>::try_from(w) else {
            unreachable!("8 bytes")
        };
        let w = u64::from_le_bytes(w);
        let m = zero_bytes(w ^ ra) | zero_bytes(w ^ rb) | zero_bytes(w ^ rc);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..]
        .iter()
        .position(|&x| x == a || x == b || x == c)
        .map(|p| i + p)
}

impl<R: Read> Tokenizer<R> {
    pub fn new(src: R, delim: u8, quote: u8) -> Self {
        Self {
            src,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            line: 1,
            delim,
            quote,
            extra: Vec::new(),
            check_utf8: false,
            utf8_to: 0,
            avx2: avx2::usable(delim, quote),
            pending: None,
            bounds: Vec::new(),
        }
    }

    /// Checks the input for UTF-8 as it is read: records wholly inside checked text are marked
    /// ([`Record::known_utf8`]) so that callers skip their own check.
    pub fn check_utf8(mut self, on: bool) -> Self {
        self.check_utf8 = on;
        self
    }

    /// Extends the checked run as far as the buffered bytes allow (a character cut by the end of
    /// the buffer waits for the rest; a bad byte stops the run).
    fn advance_utf8(&mut self) {
        if !self.check_utf8 {
            return;
        }
        self.utf8_to = self.utf8_to.max(self.pos);
        let from = self.utf8_to;
        match simdutf8::compat::from_utf8(&self.buf[from..self.end]) {
            Ok(_) => self.utf8_to = self.end,
            Err(e) => self.utf8_to = from + e.valid_up_to(),
        }
    }

    /// Line of the next byte to read.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Moves the unread bytes to the front and reads more; false at end of input.
    fn refill(&mut self) -> Result<bool, TokenizeError> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.utf8_to = self.utf8_to.saturating_sub(self.pos);
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_RECORD_BYTES {
                return Err(TokenizeError::TooLong { line: self.line });
            }
            let n = (self.buf.len() * 2).min(MAX_RECORD_BYTES);
            self.buf.resize(n, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    self.advance_utf8();
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(TokenizeError::Io {
                        line: self.line,
                        source,
                    });
                }
            }
        }
    }

    /// Reads the next record into `rec`; false at end of input.
    pub fn read_record(&mut self, rec: &mut Record) -> Result<bool, TokenizeError> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let mut bounds = std::mem::take(&mut self.bounds);
        let got = self.parse_next(&mut bounds);
        if let Ok(Some(next)) = &got {
            self.copy_record(rec, &bounds, next);
            (rec.line, rec.utf8) = self.consume(next);
        }
        self.bounds = bounds;
        Ok(got?.is_some())
    }

    /// Reads the next records of the block's width into `block` (emptied first), at most
    /// `max_records` and no more once they hold `max_bytes`; false at end of input. A record of
    /// another width ends the block: it is the block's [`Block::odd`] record when it comes first,
    /// else the first record of the next block. An error after some records is returned by the
    /// next call, so that the records before it are handled first.
    pub fn read_block(
        &mut self,
        block: &mut Block,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<bool, TokenizeError> {
        block.clear();
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        debug_assert!(max_bytes <= MAX_RECORD_BYTES);
        let mut bounds = std::mem::take(&mut self.bounds);
        let result = loop {
            if block.len() >= max_records || block.raw_bytes >= max_bytes {
                break Ok(true);
            }
            let next = match self.parse_next(&mut bounds) {
                Ok(Some(next)) => next,
                Ok(None) => break Ok(!block.is_empty()),
                Err(e) if block.is_empty() => break Err(e),
                Err(e) => {
                    self.pending = Some(e);
                    break Ok(true);
                }
            };
            if bounds.len() != block.width {
                if block.is_empty() {
                    self.copy_record(&mut block.odd, &bounds, &next);
                    (block.odd.line, block.odd.utf8) = self.consume(&next);
                    block.has_odd = true;
                }
                // else left unread, for the next block
                break Ok(true);
            }
            let start = self.pos;
            for (c, &(a, b)) in block.cols.iter_mut().zip(&bounds) {
                let (a, b) = (a as usize, b as usize);
                if a & EXTRA as usize != 0 {
                    let x = a & !(EXTRA as usize);
                    let y = b & !(EXTRA as usize);
                    c.data.extend_from_slice(&self.extra[x..y]);
                } else if let Some(w) = self.buf.get(start + a..start + a + 16)
                    && b - a <= 16
                {
                    // most values are short: one fixed-size move, then the length
                    let old = c.data.len();
                    c.data.extend_from_slice(w);
                    c.data.truncate(old + b - a);
                } else {
                    c.data.extend_from_slice(&self.buf[start + a..start + b]);
                }
                // 32-bit offsets: a block holds less than `max_bytes` and one record of at
                // most MAX_RECORD_BYTES (twice that with its unescaped copies)
                c.starts.push(c.data.len() as u32);
            }
            block.raw_bytes += next.end - start;
            let (line, utf8) = self.consume(&next);
            block.lines.push(line);
            block.utf8.push(utf8);
        };
        self.bounds = bounds;
        for c in &mut block.cols {
            c.data.extend_from_slice(&[0; RECORD_PADDING]);
        }
        result
    }

    /// Parses the next record (after blank lines) without consuming it: its fields' bounds in
    /// `bounds` (relative to `self.pos`, or marked [`EXTRA`] in `self.extra`); None at end of
    /// input.
    fn parse_next(
        &mut self,
        bounds: &mut Vec<(u32, u32)>,
    ) -> Result<Option<NextRecord>, TokenizeError> {
        loop {
            // Empty lines.
            while self.pos < self.end {
                match self.buf[self.pos] {
                    b'\n' => {
                        self.line += 1;
                        self.pos += 1;
                    }
                    b'\r' => self.pos += 1,
                    _ => break,
                }
            }
            if self.pos == self.end {
                if self.refill()? {
                    continue;
                }
                return Ok(None);
            }
            bounds.clear();
            self.extra.clear();
            match self.parse(bounds, 0) {
                Parsed::Done {
                    end,
                    next,
                    newlines,
                } => {
                    return Ok(Some(NextRecord {
                        end,
                        next,
                        newlines,
                    }));
                }
                Parsed::Unclosed { field } => {
                    return Err(TokenizeError::Unclosed {
                        line: self.line,
                        field,
                    });
                }
                Parsed::NeedMore => {
                    // more input, or the end of it: either way the next parse gets further
                    if !self.refill()? && !self.eof {
                        unreachable!("refill reads or reaches the end")
                    }
                }
            }
        }
    }

    /// The record [`Tokenizer::parse_next`] found, into `rec` (line and UTF-8 flag aside).
    fn copy_record(&self, rec: &mut Record, bounds: &[(u32, u32)], next: &NextRecord) {
        let start = self.pos;
        rec.buf.clear();
        rec.buf.extend_from_slice(&self.buf[start..next.end]);
        let base = (next.end - start) as u32;
        rec.buf.extend_from_slice(&self.extra);
        rec.bounds.clear();
        rec.bounds.extend(bounds.iter().map(|&(a, b)| {
            if a & EXTRA != 0 {
                ((a & !EXTRA) + base, (b & !EXTRA) + base)
            } else {
                (a, b)
            }
        }));
        rec.used = rec.buf.len();
        rec.buf.extend_from_slice(&[0; RECORD_PADDING]);
    }

    /// Moves past the record [`Tokenizer::parse_next`] found; returns its line and whether it is
    /// known to be UTF-8.
    fn consume(&mut self, next: &NextRecord) -> (u64, bool) {
        let line = self.line;
        let utf8 = self.check_utf8 && next.end <= self.utf8_to;
        self.line += next.newlines;
        self.pos = next.next;
        if self.check_utf8 && self.utf8_to < self.pos {
            // past a bad byte: check again from here
            self.advance_utf8();
        }
        (line, utf8)
    }

    /// Parses the record at `self.pos` (not a line break) into `bounds` after its first `first`
    /// entries (relative to `self.pos`) and `self.extra`.
    fn parse(&mut self, bounds: &mut Vec<(u32, u32)>, first: usize) -> Parsed {
        let (d, q) = (self.delim, self.quote);
        let start = self.pos;
        let buf = &self.buf[..self.end];
        let extra = &mut self.extra;
        let eof = self.eof;
        let use_avx2 = self.avx2;
        let rel = |i: usize| (i - start) as u32;
        let mut i = start;
        let mut newlines = 0u64;
        loop {
            // Start of a field.
            if i == buf.len() {
                if !eof {
                    return Parsed::NeedMore;
                }
                // the record ended with a delimiter: one last empty field
                bounds.push((rel(i), rel(i)));
                return Parsed::Done {
                    end: i,
                    next: i,
                    newlines,
                };
            }
            let stop = if buf[i] == q {
                // Quoted: content up to the closing quote; doubled quotes are one quote.
                let mut j = i + 1;
                let content = j;
                let mut escaped = false;
                let close = loop {
                    match memchr::memchr(q, &buf[j..]) {
                        None => {
                            if !eof {
                                return Parsed::NeedMore;
                            }
                            break None;
                        }
                        Some(k) => {
                            let at = j + k;
                            if at + 1 == buf.len() && !eof {
                                return Parsed::NeedMore;
                            }
                            if buf.get(at + 1) == Some(&q) {
                                escaped = true;
                                j = at + 2;
                                continue;
                            }
                            break Some(at);
                        }
                    }
                };
                let content_end = close.unwrap_or(buf.len());
                newlines += memchr::memchr_iter(b'\n', &buf[content..content_end]).count() as u64;
                let Some(close) = close else {
                    // unterminated at the end of the input: the rest of the file would be
                    // one value of this record (rows silently swallowed), so it is an error
                    let _ = escaped;
                    return Parsed::Unclosed {
                        field: bounds.len() - first + 1,
                    };
                };
                // After the closing quote: a delimiter, a line break, the end, or more text
                // that joins the field.
                let after = close + 1;
                let tail_end = match find3(&buf[after..], d, b'\n', b'\r') {
                    Some(k) => after + k,
                    None => {
                        if !eof {
                            return Parsed::NeedMore;
                        }
                        buf.len()
                    }
                };
                if tail_end == after {
                    push_quoted(
                        bounds,
                        extra,
                        q,
                        &buf[content..close],
                        escaped,
                        rel(content),
                        rel(close),
                    );
                } else {
                    // "ab"cd: the field is the unescaped content followed by the tail as is
                    let a = extra.len() as u32;
                    unescape_into(extra, &buf[content..close], q);
                    extra.extend_from_slice(&buf[after..tail_end]);
                    bounds.push((a | EXTRA, extra.len() as u32 | EXTRA));
                }
                tail_end
            } else {
                let scanned = if use_avx2 {
                    avx2::scan(buf, start, i, d, q, bounds)
                } else {
                    None
                };
                let scanned = match scanned {
                    Some(Scan::LineEnd(stop)) => Some(stop),
                    Some(Scan::Field(j)) => {
                        i = j;
                        if j == buf.len() || buf[j] == q {
                            continue;
                        }
                        None
                    }
                    None => None,
                };
                match scanned {
                    Some(stop) => stop,
                    None => match find3(&buf[i..], d, b'\n', b'\r') {
                        Some(k) => {
                            bounds.push((rel(i), rel(i + k)));
                            i + k
                        }
                        None => {
                            if !eof {
                                return Parsed::NeedMore;
                            }
                            bounds.push((rel(i), rel(buf.len())));
                            buf.len()
                        }
                    },
                }
            };
            if stop == buf.len() {
                if !eof {
                    return Parsed::NeedMore;
                }
                return Parsed::Done {
                    end: stop,
                    next: stop,
                    newlines,
                };
            }
            match buf[stop] {
                c if c == d => i = stop + 1,
                b'\n' => {
                    return Parsed::Done {
                        end: stop,
                        next: stop + 1,
                        newlines: newlines + 1,
                    };
                }
                _ => {
                    // '\r', maybe followed by '\n'
                    if stop + 1 == buf.len() && !eof {
                        return Parsed::NeedMore;
                    }
                    let crlf = buf.get(stop + 1) == Some(&b'\n');
                    return Parsed::Done {
                        end: stop,
                        next: stop + 1 + crlf as usize,
                        newlines: newlines + crlf as u64,
                    };
                }
            }
        }
    }
}

/// Bounds of a quoted field's content: in place when it has no doubled quotes, else its
/// unescaped copy in the extra area.
fn push_quoted(
    bounds: &mut Vec<(u32, u32)>,
    extra: &mut Vec<u8>,
    q: u8,
    content: &[u8],
    escaped: bool,
    a: u32,
    b: u32,
) {
    if escaped {
        let s = extra.len() as u32;
        unescape_into(extra, content, q);
        bounds.push((s | EXTRA, extra.len() as u32 | EXTRA));
    } else {
        bounds.push((a, b));
    }
}

/// Appends `content` with every doubled quote made single.
fn unescape_into(out: &mut Vec<u8>, content: &[u8], q: u8) {
    let mut rest = content;
    while let Some(k) = memchr::memchr(q, rest) {
        out.extend_from_slice(&rest[..=k]);
        // a lone quote can only be the last byte of an unterminated field
        rest = if rest.get(k + 1) == Some(&q) {
            &rest[k + 2..]
        } else {
            &rest[k + 1..]
        };
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records as (line, fields).
    type Lines = Vec<(u64, Vec<Vec<u8>>)>;

    /// Our records, and whether the input ended inside a quote (an error after them).
    fn ours(input: &[u8], d: u8, chunk: usize) -> (Lines, bool) {
        let mut t = Tokenizer::new(input, d, b'"');
        t.buf = vec![0; chunk];
        let mut rec = Record::new();
        let mut out = Vec::new();
        loop {
            match t.read_record(&mut rec) {
                Ok(true) => out.push((rec.line(), rec.iter().map(|f| f.to_vec()).collect())),
                Ok(false) => return (out, false),
                Err(TokenizeError::Unclosed { .. }) => return (out, true),
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// The csv crate's records but the last when that one runs to the end inside a quote.
    fn theirs_but(input: &[u8], d: u8, unclosed: bool) -> Vec<Vec<Vec<u8>>> {
        let mut t = theirs(input, d);
        if unclosed {
            assert!(t.pop().is_some(), "the csv crate has the swallowing record");
        }
        t
    }

    fn theirs(input: &[u8], d: u8) -> Vec<Vec<Vec<u8>>> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(d)
            .double_quote(true)
            .from_reader(input);
        let mut rec = csv::ByteRecord::new();
        let mut out = Vec::new();
        while r.read_byte_record(&mut rec).unwrap() {
            out.push(rec.iter().map(|f| f.to_vec()).collect());
        }
        out
    }

    /// Line of each record's first byte, found independently: the records' first bytes are
    /// where the csv crate's byte positions point after blank lines are skipped.
    fn check(input: &[u8], d: u8) {
        for chunk in [1, 2, 3, 7, 64, CHUNK] {
            let (got, unclosed) = ours(input, d, chunk);
            let fields: Vec<Vec<Vec<u8>>> = got.iter().map(|(_, f)| f.clone()).collect();
            assert_eq!(
                fields,
                theirs_but(input, d, unclosed),
                "input {:?} (chunk {chunk})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn ordinary_records() {
        check(b"a,b,c\n1,2,3\n", b',');
        check(b"a;b\r\n1;2\r\n", b';');
        check(b"a|b\r1|2\r", b'|');
        check(b"no,final,newline", b',');
        check(b"trailing,delim,\nx,y,\n", b',');
        check(b"", b',');
        check(b"\n\n\r\n", b',');
        check(b"a\n\n\nb\n", b',');
        check(b",,\n,\n", b',');
    }

    #[test]
    fn quoted_fields() {
        check(b"\"a,b\",\"c\nd\"\n", b',');
        check(b"\"he said \"\"hi\"\"\",x\n", b',');
        check(b"\"\"\"\"\n", b',');
        check(b"\"ab\"cd,e\n", b',');
        check(b"\"ab\"\"c\"d,e\n", b',');
        check(b"x\"y\"z,\"\"\n", b',');
        check(b"\"unterminated,\nto the end", b',');
        check(b"\"unterminated \"\" escaped", b',');
        check(b"\"q\"\r\n\"r\"\r", b',');
        check(b"\"a\"", b',');
        check(b"\"", b',');
        check(b"a,\"", b',');
    }

    #[test]
    fn a_quote_open_at_the_end_of_the_input_is_a_located_error() {
        // a stray quote in a last column would make every later row part of one value
        let mut input = b"id,note\n1,fine\n2,\"oops unclosed\n".to_vec();
        for i in 3..1003 {
            input.extend_from_slice(format!("{i},n{i}\n").as_bytes());
        }
        for chunk in [7, 64, CHUNK] {
            let mut t = Tokenizer::new(input.as_slice(), b',', b'"');
            t.buf = vec![0; chunk];
            let mut rec = Record::new();
            assert!(t.read_record(&mut rec).unwrap() && t.read_record(&mut rec).unwrap());
            match t.read_record(&mut rec) {
                Err(e @ TokenizeError::Unclosed { line: 3, field: 2 }) => {
                    assert!(
                        e.to_string().starts_with("line 3: field 2 opens a quote"),
                        "{e}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        // cut inside a quoted field, and a lone quote as the last byte
        for input in [&b"a,b\n1,\"cut in the mid"[..], b"a,\""] {
            let (_, unclosed) = ours(input, b',', CHUNK);
            assert!(unclosed, "{:?}", String::from_utf8_lossy(input));
        }
        // closed quotes are fine, also as the very last byte
        assert!(!ours(b"a,\"b\nc\"", b',', CHUNK).1);
    }

    #[test]
    fn lines_are_where_records_start() {
        let (got, _) = ours(b"a\n\n\"b\nc\"\r\n\r\nd\re\n", b',', CHUNK);
        let lines: Vec<u64> = got.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [1, 3, 6, 6]);
        // a bare \r ends a record without starting a new line (as the csv crate counts)
    }

    #[test]
    fn generated_inputs_agree_with_the_csv_crate() {
        // xorshift: deterministic, no dependency
        let mut s: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let alphabet: &[u8] = b"ab,;\"\r\n \xc3\xa9x1";
        for _ in 0..3000 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            check(&input, b',');
            check(&input, b';');
        }
    }

    /// The records of `input` read a block at a time (blocks for `width` fields, at most
    /// `max` records each), as (line, fields), and whether an unclosed quote ended it.
    fn by_blocks(input: &[u8], d: u8, chunk: usize, width: usize, max: usize) -> (Lines, bool) {
        let mut t = Tokenizer::new(input, d, b'"');
        t.buf = vec![0; chunk];
        let mut block = Block::new(width, d);
        let mut out = Vec::new();
        loop {
            match t.read_block(&mut block, max, 1 << 20) {
                Ok(true) => {}
                Ok(false) => return (out, false),
                Err(TokenizeError::Unclosed { .. }) => return (out, true),
                Err(e) => panic!("{e}"),
            }
            match block.odd() {
                Some(rec) => {
                    assert!(block.is_empty(), "an odd record is alone in its block");
                    assert_ne!(rec.len(), width);
                    out.push((rec.line(), rec.iter().map(|f| f.to_vec()).collect()));
                }
                None => {
                    assert!(!block.is_empty() && block.len() <= max);
                    for i in 0..block.len() {
                        let rec = block.record(i);
                        assert_eq!(rec.line(), block.line(i));
                        let fields: Vec<Vec<u8>> = (0..width)
                            .map(|j| {
                                let (bytes, starts) = block.column(j);
                                assert_eq!(
                                    block.field(i, j),
                                    &bytes[starts[i] as usize..starts[i + 1] as usize]
                                );
                                // 16 readable bytes after every value
                                assert!(bytes.len() >= starts[i] as usize + RECORD_PADDING);
                                block.field(i, j).to_vec()
                            })
                            .collect();
                        assert_eq!(rec.iter().map(|f| f.to_vec()).collect::<Vec<_>>(), fields);
                        out.push((rec.line(), fields));
                    }
                }
            }
        }
    }

    #[test]
    fn blocks_hold_the_records_read_one_at_a_time() {
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let alphabet: &[u8] = b"ab,,,\"\r\n\n \xc3\xa9x1";
        let mut inputs: Vec<Vec<u8>> = vec![
            b"a,b,c\n1,2,3\n4,5\n\n6,7,8,9\n\"x\ny\",\"q\"\"r\",z\n".to_vec(),
            b"a,b\n".repeat(40),
            b"".to_vec(),
        ];
        for _ in 0..600 {
            let len = (next() % 60) as usize;
            inputs.push(
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect(),
            );
        }
        for (k, input) in inputs.iter().enumerate() {
            // (every tokenizer allocates its CHUNK buffer: the large one on some inputs only)
            let chunks: &[usize] = if k % 16 == 0 {
                &[1, 3, 64, CHUNK]
            } else {
                &[1, 3, 64]
            };
            for &chunk in chunks {
                let want = ours(input, b',', chunk);
                for width in [1, 2, 3] {
                    for max in [1, 2, 5, 1000] {
                        assert_eq!(
                            by_blocks(input, b',', chunk, width, max),
                            want,
                            "input {:?}, chunk {chunk}, width {width}, max {max}",
                            String::from_utf8_lossy(input)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_block_stops_before_an_error_which_the_next_read_returns() {
        let input = b"a,b\n1,2\n3,\"unclosed\n";
        let mut t = Tokenizer::new(&input[..], b',', b'"');
        let mut block = Block::new(2, b',');
        assert!(t.read_block(&mut block, 100, 1 << 20).unwrap());
        assert_eq!((block.len(), block.field(1, 1)), (2, &b"2"[..]));
        match t.read_block(&mut block, 100, 1 << 20) {
            Err(TokenizeError::Unclosed { line: 3, field: 2 }) => {}
            other => panic!("{other:?}"),
        }
        // a block's size in bytes is bounded too
        let input = b"a,b\n".repeat(100);
        let mut t = Tokenizer::new(&input[..], b',', b'"');
        assert!(t.read_block(&mut block, 1000, 10).unwrap());
        assert_eq!(
            block.len(),
            4,
            "stops once it holds 10 bytes (records of 3)"
        );
    }

    #[test]
    fn an_overlong_record_is_a_located_error() {
        let mut input = b"ok\n\"".to_vec();
        input.resize(MAX_RECORD_BYTES + 10, b'x');
        let mut t = Tokenizer::new(&input[..], b',', b'"');
        let mut rec = Record::new();
        assert!(t.read_record(&mut rec).unwrap());
        match t.read_record(&mut rec) {
            Err(TokenizeError::TooLong { line }) => assert_eq!(line, 2),
            other => panic!("expected TooLong, got {other:?}"),
        }
    }

    #[test]
    fn fields_lie_in_the_record_slice() {
        let mut t = Tokenizer::new(&b"abc,\"d\"\"e\",f\n"[..], b',', b'"');
        let mut rec = Record::new();
        assert!(t.read_record(&mut rec).unwrap());
        let all = rec.as_slice();
        for i in 0..rec.len() {
            let r = rec.range(i).unwrap();
            assert_eq!(&all[r], &rec[i]);
        }
        assert_eq!(&rec[1], b"d\"e");
        // zeros follow, whatever the previous record left (a longer one here)
        let padded = rec.padded();
        assert_eq!(&padded[..all.len()], all);
        assert_eq!(&padded[all.len()..], &[0; RECORD_PADDING]);
        let mut t = Tokenizer::new(&b"a-much-longer-first-record,x\ny,z\n"[..], b',', b'"');
        assert!(t.read_record(&mut rec).unwrap() && t.read_record(&mut rec).unwrap());
        assert_eq!(rec.as_slice(), b"y,z");
        assert_eq!(rec.padded(), b"y,z\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    }

    /// Hands out a few bytes per read, so that characters and records straddle refills.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn records_in_checked_text_are_known_utf8_and_a_bad_byte_only_taints_its_record() {
        let input = b"\xc3\xa91,a\nb,\xff\nc,\"d\xc3\xa9\"\"e\"\nf,g".to_vec();
        for step in [1, 2, 3, 7, 1 << 20] {
            let mut t = Tokenizer::new(Trickle(&input, step), b',', b'"').check_utf8(true);
            let mut rec = Record::new();
            let mut known = Vec::new();
            while t.read_record(&mut rec).unwrap() {
                known.push(rec.known_utf8());
                assert_eq!(
                    rec.known_utf8(),
                    std::str::from_utf8(rec.as_slice()).is_ok(),
                    "read {step} bytes at a time: {rec:?}"
                );
            }
            assert_eq!(
                known,
                [true, false, true, true],
                "read {step} bytes at a time"
            );
        }
        // off unless asked for: nothing is claimed
        let mut t = Tokenizer::new(&input[..], b',', b'"');
        let mut rec = Record::new();
        assert!(t.read_record(&mut rec).unwrap());
        assert!(!rec.known_utf8());
    }

    /// Everything a run yields: each record whole (bytes, bounds, line, UTF-8 flag), then the
    /// error that ended it, if any, and the tokenizer's final line.
    type Run = (Vec<Record>, Option<(u64, &'static str)>, u64);

    /// Reads `input` `step` bytes at a time into a buffer of `chunk` bytes, with or without AVX2.
    fn run(input: &[u8], d: u8, chunk: usize, step: usize, avx2: bool) -> Run {
        let mut t = Tokenizer::new(Trickle(input, step), d, b'"').check_utf8(true);
        t.avx2 &= avx2;
        t.buf = vec![0; chunk];
        let mut rec = Record::new();
        let mut out = Vec::new();
        let err = loop {
            match t.read_record(&mut rec) {
                Ok(true) => out.push(rec.clone()),
                Ok(false) => break None,
                Err(e) => {
                    let kind = match e {
                        TokenizeError::Io { .. } => "io",
                        TokenizeError::TooLong { .. } => "too long",
                        TokenizeError::Unclosed { .. } => "unclosed",
                    };
                    break Some((e.line(), kind));
                }
            }
        };
        (out, err, t.line())
    }

    /// The AVX2 and scalar paths give the same records for every buffer size and read size, and
    /// their fields are the csv crate's.
    fn check_paths(input: &[u8], d: u8, configs: &[(usize, usize)]) {
        let show = || String::from_utf8_lossy(input).into_owned();
        let reference = run(input, d, CHUNK, usize::MAX, false);
        let unclosed = match reference.1 {
            None => false,
            Some((_, "unclosed")) => true,
            other => panic!("{other:?} in {:?}", show()),
        };
        let fields: Vec<Vec<Vec<u8>>> = reference
            .0
            .iter()
            .map(|r| r.iter().map(<[u8]>::to_vec).collect())
            .collect();
        assert_eq!(fields, theirs_but(input, d, unclosed), "input {:?}", show());
        for r in &reference.0 {
            // known exactly when valid: a returned record's bytes are all checked (a character
            // cut by a read ends before a line break, so it is completed first, or at the end)
            assert_eq!(
                r.known_utf8(),
                std::str::from_utf8(r.as_slice()).is_ok(),
                "{r:?} in {:?}",
                show()
            );
        }
        for &(chunk, step) in configs {
            for avx2 in [false, true] {
                let got = run(input, d, chunk, step, avx2);
                if got != reference {
                    // the first difference, not two large dumps
                    let i = (0..got.0.len().max(reference.0.len()))
                        .find(|&i| got.0.get(i) != reference.0.get(i))
                        .unwrap_or(0);
                    panic!(
                        "avx2 {avx2}, chunk {chunk}, read {step}: record {i} is {:?}, expected \
                         {:?} (errors {:?} / {:?}, lines {} / {}) in {:?}",
                        got.0.get(i),
                        reference.0.get(i),
                        got.1,
                        reference.1,
                        got.2,
                        reference.2,
                        show()
                    );
                }
            }
        }
    }

    /// xorshift: deterministic, no dependency.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// 0..n
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len())]
        }

        /// `len` bytes of unquoted text: no delimiter or line break; quotes, other delimiters and
        /// non-ASCII bytes (valid and not) are ordinary here.
        fn plain(&mut self, d: u8, len: usize, out: &mut Vec<u8>) {
            const TEXT: &[&[u8]] = &[
                b"a",
                b"Z",
                b"0",
                b"7",
                b" ",
                b".",
                b"-",
                b"\"",
                b",",
                b";",
                b"|",
                b"\t",
                b"\xc3\xa9",
                b"\xe2\x82\xac",
                b"\xff",
                b"\x80",
                b"\x00",
            ];
            let to = out.len() + len;
            while out.len() < to {
                let piece = *self.pick(TEXT);
                if !piece.contains(&d) {
                    out.extend_from_slice(piece);
                }
            }
        }

        /// A length of 0..100, mostly short as in real exports.
        fn len(&mut self) -> usize {
            match self.below(4) {
                0 => self.below(4),
                1 | 2 => self.below(16),
                _ => self.below(101),
            }
        }

        /// One CSV text: records of 1..24 fields, plain and quoted, with every kind of line
        /// break, blank lines and maybe no final line break or an unterminated quote.
        fn csv(&mut self, d: u8, records: usize) -> Vec<u8> {
            let mut out = Vec::new();
            for r in 0..records {
                let fields = 1 + self.below(24);
                for f in 0..fields {
                    if f > 0 {
                        out.push(d);
                    }
                    match self.below(10) {
                        0 | 1 => {}
                        2..=6 => {
                            let n = self.len();
                            let at = out.len();
                            self.plain(d, n, &mut out);
                            if out.get(at) == Some(&b'"') {
                                out[at] = b'q'; // that would be a quoted field
                            }
                        }
                        _ => {
                            out.push(b'"');
                            let n = self.len();
                            let to = out.len() + n;
                            while out.len() < to {
                                match self.below(12) {
                                    0 => out.extend_from_slice(b"\"\""),
                                    1 => out.push(d),
                                    2 => out.push(b'\n'),
                                    3 => out.extend_from_slice(b"\r\n"),
                                    4 => out.push(b'\r'),
                                    _ => {
                                        let k = 1 + self.below(8);
                                        self.plain(d, k, &mut out);
                                        if out.last() == Some(&b'"') {
                                            out.pop(); // keep the quote open
                                        }
                                    }
                                }
                            }
                            let last = r + 1 == records && f + 1 == fields;
                            if last && self.below(8) == 0 {
                                // unterminated: runs to the end of the input
                                return out;
                            }
                            out.push(b'"');
                            if self.below(6) == 0 {
                                // text after the closing quote joins the field
                                let n = 1 + self.below(10);
                                self.plain(d, n, &mut out);
                            }
                        }
                    }
                }
                let last = r + 1 == records;
                if last && self.below(3) == 0 {
                    return out; // no final line break
                }
                // blank lines too: a break with more after it
                const BREAKS: &[&[u8]] = &[
                    b"\n",
                    b"\n",
                    b"\n",
                    b"\r\n",
                    b"\r\n",
                    b"\r",
                    b"\n\n",
                    b"\r\n\r\n",
                    b"\n\r\n\r",
                ];
                let brk = *self.pick(BREAKS);
                out.extend_from_slice(brk);
            }
            out
        }
    }

    /// Buffer and read sizes that put refills everywhere: smaller than a 64-byte block (the
    /// scalar path alone until the buffer grows), around it, and odd ones.
    const CONFIGS: &[(usize, usize)] = &[
        (1, 1),
        (7, 3),
        (64, 64),
        (65, 1),
        (100, 37),
        (127, 1000),
        (128, 64),
        (257, 100),
        (1000, 1),
        (4096, 333),
        (CHUNK, 100),
        (CHUNK, usize::MAX),
    ];

    #[test]
    fn avx2_is_used_where_the_cpu_has_it_for_ordinary_bytes() {
        #[cfg(target_arch = "x86_64")]
        let has = std::arch::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let has = false;
        for d in [b',', b';', b'|', b'\t'] {
            assert_eq!(Tokenizer::new(&b""[..], d, b'"').avx2, has);
            assert_eq!(Tokenizer::new(&b""[..], d, b'\'').avx2, has);
        }
        for (d, q) in [
            (b',', b','),
            (b'\n', b'"'),
            (b'\r', b'"'),
            (b',', b'\n'),
            (b',', b'\r'),
        ] {
            assert!(!Tokenizer::new(&b""[..], d, q).avx2, "{d} {q}");
        }
    }

    #[test]
    fn the_avx2_and_scalar_paths_agree_on_generated_csv() {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        for n in 0..1500 {
            let d = *g.pick(b",;|\t");
            let records = g.below(12);
            let input = g.csv(d, records);
            check_paths(&input, d, CONFIGS);
            // the same text cut short anywhere
            let cut = g.below(input.len() + 1);
            if n % 4 == 0 {
                check_paths(&input[..cut], d, CONFIGS);
            }
        }
    }

    #[test]
    fn the_avx2_and_scalar_paths_agree_on_byte_soup() {
        let mut g = Gen(0xD1B5_4A32_D192_ED03);
        let alphabet: &[u8] = b",;|\t\"\"\r\n\n ab\xc3\xa9\xff";
        for _ in 0..3000 {
            let d = *g.pick(b",;|\t");
            let len = g.below(300);
            let input: Vec<u8> = (0..len).map(|_| *g.pick(alphabet)).collect();
            check_paths(
                &input,
                d,
                &[(1, 1), (64, 7), (100, 100), (CHUNK, usize::MAX)],
            );
        }
    }

    #[test]
    fn the_avx2_and_scalar_paths_agree_across_full_size_refills() {
        // a few MiB, so that records straddle refills of the real buffer size at many offsets
        let mut g = Gen(0x0123_4567_89AB_CDEF);
        for d in [b',', b'\t'] {
            let mut input = Vec::new();
            while input.len() < 3 * CHUNK {
                let records = 1 + g.below(50);
                let mut more = g.csv(d, records);
                if !more.ends_with(b"\n") && !more.ends_with(b"\r") {
                    more.push(b'\n'); // whole records only, until the end
                }
                if more.iter().filter(|&&b| b == b'"').count() % 2 == 1 {
                    continue; // an unterminated quote would swallow the rest
                }
                input.extend_from_slice(&more);
            }
            let tail = g.csv(d, 3);
            input.extend_from_slice(&tail);
            check_paths(
                &input,
                d,
                &[
                    (CHUNK, usize::MAX),
                    (CHUNK, CHUNK - 13),
                    (CHUNK, 65_537),
                    (CHUNK, 4093),
                ],
            );
        }
    }

    #[test]
    fn unquoted_records_near_the_size_limit_are_read_or_refused_as_before() {
        // 100-byte fields up to `len` bytes, after a first record so that the large one starts on
        // line 2 and is moved to the front of the buffer by a refill
        let input = |len: usize, end: &[u8]| {
            let mut v = b"ok\n".to_vec();
            let mut f = 0;
            while v.len() - 3 < len {
                v.push(if f % 100 == 99 { b',' } else { b'x' });
                f += 1;
            }
            v.extend_from_slice(end);
            v
        };
        for (len, end, ok) in [
            (MAX_RECORD_BYTES - 2, &b"\nnext\n"[..], true),
            (MAX_RECORD_BYTES - 1, b"\nnext\n", true),
            (MAX_RECORD_BYTES, b"\nnext\n", false),
            (MAX_RECORD_BYTES - 1, b"", true),
            (MAX_RECORD_BYTES, b"", false),
            (MAX_RECORD_BYTES - 2, b"\r\n", true),
            // the `\r` fills the buffer, which must hold the byte after it too
            (MAX_RECORD_BYTES - 1, b"\r\n", false),
        ] {
            let input = input(len, end);
            let scalar = run(&input, b',', CHUNK, usize::MAX, false);
            let fast = run(&input, b',', CHUNK, usize::MAX, true);
            assert!(scalar == fast, "{len} bytes then {end:?}");
            if ok {
                assert_eq!(scalar.1, None, "{len} bytes then {end:?}");
                assert_eq!(scalar.0[1].as_slice().len(), len);
                assert_eq!(scalar.0[1].len(), len.div_ceil(100));
                assert_eq!(scalar.0[1].line(), 2);
            } else {
                assert_eq!(scalar.1, Some((2, "too long")), "{len} bytes then {end:?}");
            }
        }
    }
}
