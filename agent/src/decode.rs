//! Source decoding: BOMs, text encodings, preamble lines and delimiter sniffing.
//!
//! Turns an export file into a stream of UTF-8 bytes for the CSV tokenizer while hashing and
//! counting the raw bytes (the batch id comes from the source SHA-256). Owns `encoding = auto`
//! (BOM, else strict UTF-8 over the whole file, else the legacy fallback) and `delimiter = auto`.
//! It does not split records or parse values.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::contract::{CsvSettings, Delimiter, Encoding};

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path}: starts with a {bom} byte-order mark but csv.encoding = {configured}")]
    BomMismatch {
        path: String,
        bom: &'static str,
        configured: &'static str,
    },
    #[error("{path}: cannot detect the delimiter: {reason}; set csv.delimiter")]
    Delimiter { path: String, reason: String },
    /// `encoding = auto` on a UTF-8 file with a stray byte: read as the legacy fallback, its
    /// UTF-8 text before the byte would be garbled (`Hôpital` as `HÃ´pital`), so it is refused.
    #[error(
        "{path}: line {line}: byte 0x{byte:02X} (offset {offset}) is not UTF-8, but the text \
         before it is UTF-8 with accented characters: reading the file as {fallback} would garble \
         them; fix the byte in the export, or set csv.encoding if the file really is {fallback}"
    )]
    MixedUtf8 {
        path: String,
        line: u64,
        offset: u64,
        byte: u8,
        fallback: &'static str,
    },
}

/// Reads the raw file, hashing and counting every byte.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Shared handle on the hash of a [`HashingReader`] that lives inside a boxed reader chain.
#[derive(Clone)]
pub struct HashHandle(Arc<std::sync::Mutex<Option<Sha256>>>);

/// A reader that, at EOF, hands its hasher over to a [`HashHandle`].
struct FinishingReader<R> {
    inner: HashingReader<R>,
    handle: HashHandle,
    done: bool,
}

impl<R: Read> Read for FinishingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            if let Ok(mut g) = self.handle.0.lock() {
                *g = Some(self.inner.hasher.clone());
            }
        }
        Ok(n)
    }
}

impl HashHandle {
    /// Hex SHA-256 of the whole source, once it has been read to the end.
    pub fn hex(&self) -> Option<String> {
        let g = self.0.lock().ok()?;
        g.as_ref().map(|h| hex::encode(h.clone().finalize()))
    }
}

/// Transcodes a legacy or UTF-16 byte stream to UTF-8, refusing malformed input.
struct Transcoder<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    inbuf: Box<[u8]>,
    in_start: usize,
    in_end: usize,
    eof: bool,
    out: Vec<u8>,
    out_pos: usize,
    consumed: u64,
    finished: bool,
}

impl<R: Read> Transcoder<R> {
    fn new(inner: R, enc: &'static encoding_rs::Encoding) -> Self {
        Self {
            inner,
            decoder: enc.new_decoder_without_bom_handling(),
            inbuf: vec![0; 64 * 1024].into_boxed_slice(),
            in_start: 0,
            in_end: 0,
            eof: false,
            out: Vec::with_capacity(256 * 1024),
            out_pos: 0,
            consumed: 0,
            finished: false,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.out_pos = 0;
        loop {
            if self.finished {
                return Ok(());
            }
            if self.in_start == self.in_end && !self.eof {
                let n = self.inner.read(&mut self.inbuf)?;
                self.in_start = 0;
                self.in_end = n;
                self.eof = n == 0;
            }
            self.out.clear();
            self.out.resize(self.out.capacity().max(4 * 64 * 1024), 0);
            let src = &self.inbuf[self.in_start..self.in_end];
            let (res, read, written) =
                self.decoder
                    .decode_to_utf8_without_replacement(src, &mut self.out, self.eof);
            self.in_start += read;
            self.consumed += read as u64;
            self.out.truncate(written);
            self.out_pos = 0;
            if self.eof
                && self.in_start == self.in_end
                && res == encoding_rs::DecoderResult::InputEmpty
            {
                self.finished = true;
            }
            if let encoding_rs::DecoderResult::Malformed(bad, _) = res {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "bytes that are not valid {} near byte offset {} (malformed sequence of {bad} byte(s))",
                        self.decoder.encoding().name(),
                        self.consumed
                    ),
                ));
            }
            if written > 0 || (self.eof && self.in_start == self.in_end) {
                return Ok(());
            }
        }
    }
}

impl<R: Read> Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out_pos == self.out.len() {
            self.refill()?;
        }
        let n = (self.out.len() - self.out_pos).min(buf.len());
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// A decoded export ready for the CSV tokenizer.
pub struct Decoded {
    /// UTF-8 text (for `utf-8` sources the bytes are passed through and checked per field).
    pub reader: Box<dyn BufRead + Send>,
    /// The encoding actually used.
    pub encoding: Encoding,
    /// Whether fields must still be checked for valid UTF-8 (pass-through sources).
    pub check_utf8: bool,
    /// The delimiter actually used.
    pub delimiter: u8,
    /// Raw bytes read so far (for progress).
    pub bytes_read: Arc<AtomicU64>,
    /// The source hash, available at end of input.
    pub hash: HashHandle,
    /// Lines skipped before the CSV starts (`skip_rows`), to offset line numbers.
    pub lines_skipped: u64,
}

fn detect_bom(head: &[u8]) -> Option<(Encoding, &'static encoding_rs::Encoding, usize)> {
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        Some((Encoding::Utf8, encoding_rs::UTF_8, 3))
    } else if head.starts_with(&[0xFF, 0xFE]) {
        Some((Encoding::Utf16, encoding_rs::UTF_16LE, 2))
    } else if head.starts_with(&[0xFE, 0xFF]) {
        Some((Encoding::Utf16, encoding_rs::UTF_16BE, 2))
    } else {
        None
    }
}

/// What a scan of a whole file for UTF-8 found.
#[derive(Debug, PartialEq, Eq)]
enum Utf8Scan {
    Valid,
    /// The first byte that is not UTF-8: its offset, line (from 1), value, and whether a
    /// non-ASCII character (valid UTF-8) came before it.
    Invalid {
        offset: u64,
        line: u64,
        byte: u8,
        non_ascii_before: bool,
    },
}

/// Scans the whole file for UTF-8 (streamed, constant memory).
fn scan_utf8(file: &mut impl Read) -> io::Result<Utf8Scan> {
    let mut buf = vec![0u8; 1 << 20];
    let mut carry = 0usize;
    // bytes and newlines before `buf`, and whether they held a non-ASCII character
    let (mut pos, mut lines, mut non_ascii) = (0u64, 0u64, false);
    loop {
        let n = file.read(&mut buf[carry..])?;
        if n == 0 && carry == 0 {
            return Ok(Utf8Scan::Valid);
        }
        let len = carry + n;
        // the valid bytes, and whether an invalid one follows them (at the end of the file, a
        // sequence cut short is one)
        let (valid, bad) = match simdutf8::compat::from_utf8(&buf[..len]) {
            Ok(_) => (len, false),
            Err(e) => (e.valid_up_to(), n == 0 || e.error_len().is_some()),
        };
        let seen = &buf[..valid];
        pos += valid as u64;
        lines += seen.iter().filter(|&&b| b == b'\n').count() as u64;
        non_ascii |= !seen.is_ascii();
        if bad {
            return Ok(Utf8Scan::Invalid {
                offset: pos,
                line: lines + 1,
                byte: buf[valid],
                non_ascii_before: non_ascii,
            });
        }
        // an incomplete sequence at the end of the chunk waits for the next read
        buf.copy_within(valid..len, 0);
        carry = len - valid;
    }
}

/// Opens `path` and decodes it per the contract's CSV settings.
pub fn open(path: &Path, csv: &CsvSettings) -> Result<Decoded, DecodeError> {
    let p = path.display().to_string();
    let io_err = |source| DecodeError::Io {
        path: p.clone(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        let n = file.read(&mut head[got..]).map_err(io_err)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let bom = detect_bom(&head[..got]);

    let (encoding, codec, bom_len, check_utf8) = match (csv.encoding, bom) {
        (Encoding::Auto, Some((e, c, n))) => (e, c, n, e == Encoding::Utf8),
        (Encoding::Auto, None) => {
            file.seek(SeekFrom::Start(0)).map_err(io_err)?;
            match scan_utf8(&mut file).map_err(io_err)? {
                Utf8Scan::Valid => (Encoding::Utf8, encoding_rs::UTF_8, 0, false),
                Utf8Scan::Invalid {
                    offset,
                    line,
                    byte,
                    non_ascii_before: true,
                } => {
                    return Err(DecodeError::MixedUtf8 {
                        path: p,
                        line,
                        offset,
                        byte,
                        fallback: csv.fallback_encoding.as_str(),
                    });
                }
                Utf8Scan::Invalid { .. } => {
                    let e = csv.fallback_encoding;
                    (e, codec_of(e), 0, false)
                }
            }
        }
        (configured, Some((e, c, n))) => {
            if configured != e {
                return Err(DecodeError::BomMismatch {
                    path: p,
                    bom: if e == Encoding::Utf8 {
                        "UTF-8"
                    } else {
                        "UTF-16"
                    },
                    configured: configured.as_str(),
                });
            }
            (e, c, n, e == Encoding::Utf8)
        }
        (Encoding::Utf16, None) => (Encoding::Utf16, encoding_rs::UTF_16LE, 0, false),
        (e, None) => (e, codec_of(e), 0, e == Encoding::Utf8),
    };

    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let bytes_read = Arc::new(AtomicU64::new(0));
    let hash = HashHandle(Arc::new(std::sync::Mutex::new(None)));
    let raw = FinishingReader {
        inner: HashingReader {
            inner: file,
            hasher: Sha256::new(),
            count: bytes_read.clone(),
        },
        handle: hash.clone(),
        done: false,
    };
    // Small: the tokenizer reads a megabyte at a time, and a read at least this large goes
    // straight to the file (one copy of the input, not two).
    let mut raw = BufReader::with_capacity(64 * 1024, raw);
    // Skip the BOM (it is hashed: the hash is of the file as dropped).
    let mut bom_buf = [0u8; 3];
    raw.read_exact(&mut bom_buf[..bom_len]).map_err(io_err)?;

    let mut reader: Box<dyn BufRead + Send> = if codec == encoding_rs::UTF_8 {
        Box::new(raw)
    } else {
        // windows-1252 maps every byte; iso-8859-1 is decoded as itself (WHATWG folds it into
        // windows-1252, which differs only in 0x80..0x9F, the C1 controls nobody exports).
        Box::new(BufReader::with_capacity(
            1 << 20,
            Transcoder::new(raw, codec),
        ))
    };

    // Preamble lines.
    let mut lines_skipped = 0;
    let mut line = Vec::new();
    for _ in 0..csv.skip_rows {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(io_err)?;
        if n == 0 {
            break;
        }
        lines_skipped += 1;
    }

    let delimiter = match csv.delimiter {
        Delimiter::Fixed(b) => b,
        Delimiter::Auto => {
            let mut prefix = Vec::new();
            (&mut reader)
                .take(64 * 1024)
                .read_to_end(&mut prefix)
                .map_err(io_err)?;
            let d =
                sniff_delimiter(&prefix, csv.quote).map_err(|reason| DecodeError::Delimiter {
                    path: p.clone(),
                    reason,
                })?;
            reader = Box::new(BufReader::new(io::Cursor::new(prefix).chain(reader)));
            d
        }
    };

    Ok(Decoded {
        reader,
        encoding,
        check_utf8,
        delimiter,
        bytes_read,
        hash,
        lines_skipped,
    })
}

fn codec_of(e: Encoding) -> &'static encoding_rs::Encoding {
    match e {
        Encoding::Windows1252 | Encoding::Iso8859_1 => encoding_rs::WINDOWS_1252,
        Encoding::Utf16 => encoding_rs::UTF_16LE,
        Encoding::Utf8 | Encoding::Auto => encoding_rs::UTF_8,
    }
}

/// Picks the delimiter among `, ; | TAB`: the one that appears the same non-zero number of times
/// (outside quotes) on every complete line of the sample. Refuses when none or several do.
pub fn sniff_delimiter(sample: &[u8], quote: u8) -> Result<u8, String> {
    const CANDIDATES: [u8; 4] = [b',', b';', b'|', b'\t'];
    // Split into logical lines, honouring quotes; drop the last (maybe partial) line when the
    // sample was cut.
    let mut lines: Vec<[usize; 4]> = Vec::new();
    let mut counts = [0usize; 4];
    let mut in_quotes = false;
    let mut line_has_content = false;
    for &c in sample {
        if c == quote {
            in_quotes = !in_quotes;
            line_has_content = true;
        } else if !in_quotes && c == b'\n' {
            if line_has_content {
                lines.push(counts);
            }
            counts = [0; 4];
            line_has_content = false;
        } else if !in_quotes {
            if let Some(i) = CANDIDATES.iter().position(|&d| d == c) {
                counts[i] += 1;
            }
            if c != b'\r' && c != b' ' {
                line_has_content = true;
            }
        }
        if lines.len() >= 50 {
            break;
        }
    }
    if line_has_content && lines.len() < 50 && sample.len() < 64 * 1024 {
        lines.push(counts);
    }
    if lines.is_empty() {
        return Err("the file has no complete line".into());
    }
    let consistent: Vec<u8> = CANDIDATES
        .iter()
        .enumerate()
        .filter(|(i, _)| lines[0][*i] > 0 && lines.iter().all(|l| l[*i] == lines[0][*i]))
        .map(|(_, &d)| d)
        .collect();
    let show = |d: u8| {
        if d == b'\t' {
            "TAB".to_string()
        } else {
            (d as char).to_string()
        }
    };
    if lines.iter().all(|l| l.iter().all(|&n| n == 0)) {
        // No candidate anywhere: a single-column file.
        return Ok(b',');
    }
    match consistent.as_slice() {
        [d] => Ok(*d),
        [] => Err(format!(
            "no candidate among , ; | TAB splits the first {} line(s) into the same number of fields",
            lines.len()
        )),
        many => Err(format!(
            "ambiguous: {} each split every line consistently",
            many.iter()
                .map(|&d| show(d))
                .collect::<Vec<_>>()
                .join(" and ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn settings(enc: Encoding) -> CsvSettings {
        CsvSettings {
            delimiter: Delimiter::Fixed(b','),
            quote: b'"',
            encoding: enc,
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

    fn decode(bytes: &[u8], s: &CsvSettings) -> Result<(String, Decoded), String> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        let mut d = open(f.path(), s).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        d.reader.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok((String::from_utf8(out).unwrap(), d))
    }

    #[test]
    fn utf8_bom_is_stripped_and_hashed() {
        let bytes = b"\xEF\xBB\xBFCode Activit\xC3\xA9;x\r\n";
        let (text, d) = decode(bytes, &settings(Encoding::Auto)).unwrap();
        assert_eq!(text, "Code Activité;x\r\n");
        assert_eq!(d.encoding, Encoding::Utf8);
        assert_eq!(d.hash.hex().unwrap(), hex::encode(Sha256::digest(bytes)));
        let (text, _) = decode(bytes, &settings(Encoding::Utf8)).unwrap();
        assert!(text.starts_with("Code"));
    }

    #[test]
    fn auto_falls_back_to_windows_1252() {
        let (text, d) = decode(
            b"a;b\nl\x92activit\xe9 \x96 x;1\n",
            &settings(Encoding::Auto),
        )
        .unwrap();
        assert_eq!(d.encoding, Encoding::Windows1252);
        assert_eq!(text, "a;b\nl’activité – x;1\n");
    }

    #[test]
    fn auto_refuses_utf8_text_with_a_stray_byte_and_says_where() {
        // a UTF-8 export, accents and all, with one Windows-1252 byte past the first megabyte:
        // decoded as windows-1252 every accent before it would be garbled
        let mut bytes = "site;v\nHôpital Nord;1\n".as_bytes().to_vec();
        while bytes.len() < (1 << 20) + 10 {
            bytes.extend_from_slice(b"Clinique;2\n");
        }
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        let offset = bytes.len() + 2;
        bytes.extend_from_slice(b"Bl\xE9;3\n");
        let Err(e) = decode(&bytes, &settings(Encoding::Auto)) else {
            panic!("a UTF-8 file with a stray byte was decoded")
        };
        assert!(
            e.contains(&format!("line {}: byte 0xE9 (offset {offset})", lines + 1)),
            "{e}"
        );
        assert!(e.contains("windows-1252"), "{e}");
        // declared, the file is read as the export says
        let mut s = settings(Encoding::Auto);
        s.encoding = Encoding::Windows1252;
        assert_eq!(
            decode(&bytes, &s).unwrap().1.encoding,
            Encoding::Windows1252
        );
        // ASCII before the byte: nothing to garble, the legacy fallback as before
        let (_, d) = decode(b"site;v\nBl\xE9;3\n", &settings(Encoding::Auto)).unwrap();
        assert_eq!(d.encoding, Encoding::Windows1252);
    }

    #[test]
    fn auto_keeps_valid_utf8_across_chunk_boundaries() {
        let mut bytes = vec![b'a'; (1 << 20) - 1];
        bytes.extend_from_slice("é\n".as_bytes());
        let (_, d) = decode(&bytes, &settings(Encoding::Auto)).unwrap();
        assert_eq!(d.encoding, Encoding::Utf8);
    }

    #[test]
    fn utf16le_with_bom_like_excel() {
        let mut bytes = vec![0xFF, 0xFE];
        for u in "n°\tnom\r\n1\tÉlise\r\n".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let (text, d) = decode(&bytes, &settings(Encoding::Auto)).unwrap();
        assert_eq!(d.encoding, Encoding::Utf16);
        assert_eq!(text, "n°\tnom\r\n1\tÉlise\r\n");
    }

    #[test]
    fn utf16_without_bom_is_little_endian_and_malformed_is_an_error() {
        let mut bytes = Vec::new();
        for u in "ab\n".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        let (text, _) = decode(&bytes, &settings(Encoding::Utf16)).unwrap();
        assert_eq!(text, "ab\n");
        // lone high surrogate
        let bad = [b'a', 0, 0x00, 0xD8, b'b', 0];
        let e = decode(&bad, &settings(Encoding::Utf16)).err().unwrap();
        assert!(e.contains("not valid UTF-16"), "{e}");
    }

    #[test]
    fn bom_contradicting_configuration_is_refused() {
        let e = decode(b"\xEF\xBB\xBFa\n", &settings(Encoding::Windows1252))
            .err()
            .unwrap();
        assert!(
            e.contains("UTF-8 byte-order mark") && e.contains("windows-1252"),
            "{e}"
        );
    }

    #[test]
    fn skip_rows_and_sniffing() {
        let mut s = settings(Encoding::Auto);
        s.skip_rows = 2;
        s.delimiter = Delimiter::Auto;
        let (text, d) = decode(
            b"Title, with comma\nPeriod: 2020\na;b;c\n1;\"2,5\";3\n4;5;6\n",
            &s,
        )
        .unwrap();
        assert_eq!(d.delimiter, b';');
        assert_eq!(d.lines_skipped, 2);
        assert_eq!(text, "a;b;c\n1;\"2,5\";3\n4;5;6\n");
    }

    #[test]
    fn sniff_rules() {
        assert_eq!(sniff_delimiter(b"a|b|c\n1|2|3\n", b'"'), Ok(b'|'));
        assert_eq!(sniff_delimiter(b"a\tb\n1\t2", b'"'), Ok(b'\t'));
        assert!(
            sniff_delimiter(
                b"a,b;c
1,2;3
",
                b'"'
            )
            .unwrap_err()
            .contains("ambiguous")
        );
        assert_eq!(sniff_delimiter(b"a\nb\n", b'"'), Ok(b','));
        assert!(sniff_delimiter(b"a;b\n1;2;3\n", b'"').is_err());
        assert_eq!(sniff_delimiter(b"a;b\n\"x\ny\";2\n", b'"'), Ok(b';'));
    }
}
