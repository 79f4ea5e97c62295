//! CSV tokenizing: the records and fields of a decoded export.
//!
//! The rules are those of the `csv` crate's reader with `flexible(true)`, `double_quote(true)` and
//! no escape or comment character, byte for byte (a test compares the two on generated input):
//! a field that starts with the quote character is quoted and may hold delimiters, line breaks
//! and doubled quotes; a quote anywhere else is an ordinary character; text after a closing
//! quote joins the field (`"ab"cd` is `abcd`); `\n`, `\r` and `\r\n` end a record; empty lines
//! are skipped; the last record needs no line break; an unterminated quote runs to the end of
//! the input. Two things differ on purpose: a record reports the line where it starts (the
//! `csv` crate reports the line after the previous record, which is wrong after blank lines),
//! and a record larger than [`MAX_RECORD_BYTES`] is an error (an unclosed quote in a large export
//! would otherwise read the rest of the file into memory).
//!
//! Unquoted fields, most of any export, are scanned eight bytes at a time and copied once per
//! record. It does not decode text or interpret values.

use std::io::{self, Read};
use std::ops::Range;

/// Largest record accepted, in bytes.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
/// Bytes read from the source at a time.
const CHUNK: usize = 1 << 20;
/// Marks a field bound that lies in the record's unescaped area rather than its raw bytes.
const EXTRA: u32 = 1 << 31;

/// One record: its fields' bytes and bounds, and the line it starts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    buf: Vec<u8>,
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
}

impl TokenizeError {
    pub fn line(&self) -> u64 {
        match self {
            Self::Io { line, .. } | Self::TooLong { line } => *line,
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
        match std::str::from_utf8(&self.buf[from..self.end]) {
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
                return Ok(false);
            }
            rec.bounds.clear();
            self.extra.clear();
            match self.parse(rec) {
                Parsed::Done {
                    end,
                    next,
                    newlines,
                } => {
                    let start = self.pos;
                    rec.buf.clear();
                    rec.buf.extend_from_slice(&self.buf[start..end]);
                    if !self.extra.is_empty() {
                        let base = (end - start) as u32;
                        rec.buf.extend_from_slice(&self.extra);
                        for b in &mut rec.bounds {
                            if b.0 & EXTRA != 0 {
                                *b = ((b.0 & !EXTRA) + base, (b.1 & !EXTRA) + base);
                            }
                        }
                    }
                    rec.line = self.line;
                    rec.utf8 = self.check_utf8 && end <= self.utf8_to;
                    self.line += newlines;
                    self.pos = next;
                    if self.check_utf8 && self.utf8_to < self.pos {
                        // past a bad byte: check again from here
                        self.advance_utf8();
                    }
                    return Ok(true);
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

    /// Parses the record at `self.pos` (not a line break) into `rec.bounds` (relative to
    /// `self.pos`) and `self.extra`.
    fn parse(&mut self, rec: &mut Record) -> Parsed {
        let (d, q) = (self.delim, self.quote);
        let start = self.pos;
        let buf = &self.buf[..self.end];
        let extra = &mut self.extra;
        let eof = self.eof;
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
                rec.bounds.push((rel(i), rel(i)));
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
                    // unterminated: the field runs to the end of the input
                    push_quoted(
                        rec,
                        extra,
                        q,
                        &buf[content..],
                        escaped,
                        rel(content),
                        rel(buf.len()),
                    );
                    return Parsed::Done {
                        end: buf.len(),
                        next: buf.len(),
                        newlines,
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
                        rec,
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
                    rec.bounds.push((a | EXTRA, extra.len() as u32 | EXTRA));
                }
                tail_end
            } else {
                match find3(&buf[i..], d, b'\n', b'\r') {
                    Some(k) => {
                        rec.bounds.push((rel(i), rel(i + k)));
                        i + k
                    }
                    None => {
                        if !eof {
                            return Parsed::NeedMore;
                        }
                        rec.bounds.push((rel(i), rel(buf.len())));
                        buf.len()
                    }
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
    rec: &mut Record,
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
        rec.bounds.push((s | EXTRA, extra.len() as u32 | EXTRA));
    } else {
        rec.bounds.push((a, b));
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

    fn ours(input: &[u8], d: u8, chunk: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut t = Tokenizer::new(input, d, b'"');
        t.buf = vec![0; chunk];
        let mut rec = Record::new();
        let mut out = Vec::new();
        while t.read_record(&mut rec).unwrap() {
            out.push((rec.line(), rec.iter().map(|f| f.to_vec()).collect()));
        }
        out
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
            let got = ours(input, d, chunk);
            let fields: Vec<Vec<Vec<u8>>> = got.iter().map(|(_, f)| f.clone()).collect();
            assert_eq!(
                fields,
                theirs(input, d),
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
    fn lines_are_where_records_start() {
        let got = ours(b"a\n\n\"b\nc\"\r\n\r\nd\re\n", b',', CHUNK);
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
}
