//! Parquet column chunks written page by page, straight from the column buffers.
//!
//! A [`ChunkWriter`] is one column of an open row group. Every batch of rows handed to it is cut
//! into data pages at once: definition levels (RLE/bit-packed hybrid), then the values, PLAIN or
//! as indices into the chunk's dictionary (RLE_DICTIONARY), which grows as values arrive and
//! falls back to PLAIN for the rest of the chunk when it gets too large. Pages are compressed by
//! the encoder's one [`Compressor`] and wait in the page arena ([`crate::spill`]) until the row
//! group is written, so an open chunk costs its dictionary and a few bytes per page, not a page
//! buffer and a compression context: every partition of an export can keep its row group open.
//! Statistics are kept per chunk (a dictionary's are computed from its entries, once).
//! [`ChunkWriter::finish`] lays the chunk out (dictionary page first) with page headers and
//! metadata for `SerializedRowGroupWriter::append_column`.
//!
//! It owns the page layout and encodings only: which columns use a dictionary, row-group and
//! file boundaries are decided by [`crate::writer`].

use bytes::Bytes;
use parquet::arrow::arrow_writer::{PageKey, PageStore};
use parquet::basic::{Compression as PqCompression, Encoding, Type as PhysicalType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::{ByteArray, FixedLenByteArray};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;
use rustc_hash::FxHashMap;

use crate::columns::{Column, Values, text_entry};
use crate::spill::{ArenaStore, SpillArena};
use crate::validity;

/// Rows of a data page at most.
pub const PAGE_ROWS: usize = 20_000;
/// Value bytes of a data page of text at most (one longer value makes a page of its own). Text
/// that is mostly distinct (ids, names) compresses better in pages of this size than in larger
/// ones (zstd level 3 on the benchmark's patient ids: 545 KB per partition in 32 KiB pages,
/// 553 KB in 64 KiB, 603 KB in 256 KiB), at the same speed.
pub const PAGE_BYTES: usize = 64 * 1024;
/// Scratch kept between batches at most (a larger page's buffer is freed after it).
const SCRATCH_BYTES: usize = 4 << 20;
/// A dictionary larger than this (PLAIN bytes) stops growing: later pages are PLAIN.
pub const DICTIONARY_BYTES: usize = 256 * 1024;
/// Bytes of a text statistic at most (longer values are truncated, the maximum rounded up).
const STATS_BYTES: usize = 64;
/// Groups of eight values per bit-packed run: one header byte per run, as every reader expects.
const MAX_GROUPS_PER_RUN: usize = 63;

/// What every page of one encoder goes through: one compression context and the scratch
/// buffers a page is encoded in, reused.
pub struct Compressor {
    codec: Codec,
    body: Vec<u8>,
    idx: Vec<u32>,
    /// A batch dictionary's entries to the chunk's (`u32::MAX`: not looked up yet).
    map: Vec<u32>,
}

enum Codec {
    Zstd(Box<zstd::bulk::Compressor<'static>>),
    Snappy(Box<snap::raw::Encoder>),
    None,
}

impl Compressor {
    pub fn new(codec: PqCompression) -> Result<Self> {
        Ok(Self {
            codec: Codec::new(codec)?,
            body: Vec::new(),
            idx: Vec::new(),
            map: Vec::new(),
        })
    }

    fn compress(&mut self, input: &[u8]) -> Result<Bytes> {
        self.codec.compress(input)
    }
}

impl Codec {
    fn new(codec: PqCompression) -> Result<Self> {
        Ok(match codec {
            PqCompression::ZSTD(level) => Self::Zstd(Box::new(
                zstd::bulk::Compressor::new(level.compression_level())
                    .map_err(|e| ParquetError::External(Box::new(e)))?,
            )),
            PqCompression::SNAPPY => Self::Snappy(Box::new(snap::raw::Encoder::new())),
            PqCompression::UNCOMPRESSED => Self::None,
            other => return Err(ParquetError::NYI(format!("compression {other}"))),
        })
    }

    fn compress(&mut self, input: &[u8]) -> Result<Bytes> {
        Ok(Bytes::from(match self {
            Self::Zstd(c) => c
                .compress(input)
                .map_err(|e| ParquetError::External(Box::new(e)))?,
            Self::Snappy(c) => c
                .compress_vec(input)
                .map_err(|e| ParquetError::External(Box::new(e)))?,
            Self::None => input.to_vec(),
        }))
    }
}

/// `data` as a zstd frame of raw (stored) blocks: what any zstd decoder reads, made without
/// compressing.
pub fn raw_zstd_frame(data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 128 * 1024;
    let mut out = Vec::with_capacity(data.len() + 14 + 3 * (data.len() / BLOCK + 1));
    out.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    // single segment (no window descriptor), no checksum, an 8-byte content size
    out.push(0b1110_0000);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let mut chunks = data.chunks(BLOCK).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0]); // one empty last raw block
    }
    while let Some(c) = chunks.next() {
        let last = u32::from(chunks.peek().is_none());
        let header = last | (c.len() as u32) << 3; // block type 0: raw
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(c);
    }
    out
}

/// How values are laid out, from the column's Parquet physical type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phys {
    Bool,
    I32,
    I64,
    F64,
    Bytes,
    /// Big-endian two's complement of this many bytes (wide decimals).
    Flba(usize),
}

/// Chunk statistics in the making.
#[derive(Debug, Clone, Default)]
enum Range {
    #[default]
    Empty,
    Int(i128, i128),
    Float(f64, f64),
    Bool(bool, bool),
    Bytes(Vec<u8>, Vec<u8>),
}

impl Range {
    #[inline]
    fn int(&mut self, v: i128) {
        match self {
            Self::Int(lo, hi) => {
                *lo = (*lo).min(v);
                *hi = (*hi).max(v);
            }
            _ => *self = Self::Int(v, v),
        }
    }

    #[inline]
    fn float(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        match self {
            Self::Float(lo, hi) => {
                if v < *lo {
                    *lo = v;
                }
                if v > *hi {
                    *hi = v;
                }
            }
            _ => *self = Self::Float(v, v),
        }
    }

    #[inline]
    fn boolean(&mut self, v: bool) {
        match self {
            Self::Bool(lo, hi) => {
                *lo &= v;
                *hi |= v;
            }
            _ => *self = Self::Bool(v, v),
        }
    }

    #[inline]
    fn bytes(&mut self, v: &[u8]) {
        match self {
            Self::Bytes(lo, hi) => {
                if v < lo.as_slice() {
                    lo.clear();
                    lo.extend_from_slice(v);
                } else if v > hi.as_slice() {
                    hi.clear();
                    hi.extend_from_slice(v);
                }
            }
            _ => *self = Self::Bytes(v.to_vec(), v.to_vec()),
        }
    }
}

/// A chunk's dictionary: PLAIN-encoded entries and where each value is.
#[derive(Default)]
struct Dictionary {
    plain: Vec<u8>,
    len: u32,
    /// Text: where each entry's length prefix starts in `plain`, and the entries by hash (the
    /// bytes are kept once, in `plain`).
    starts: Vec<u32>,
    text: hashbrown::HashTable<u32>,
    num: FxHashMap<u128, u32>,
}

impl Dictionary {
    /// The index of text `v`, added when new.
    #[inline]
    fn text_index(&mut self, v: &[u8]) -> u32 {
        let Self {
            plain,
            len,
            starts,
            text,
            ..
        } = self;
        let h = hash_bytes(v);
        if let Some(&k) = text.find(h, |&k| entry(plain, starts, k) == v) {
            return k;
        }
        let k = *len;
        *len += 1;
        starts.push(plain.len() as u32);
        plain.extend_from_slice(&(v.len() as u32).to_le_bytes());
        plain.extend_from_slice(v);
        text.insert_unique(h, k, |&k| hash_bytes(entry(plain, starts, k)));
        k
    }

    /// The indices of the non-null values of rows `a..b` of a numeric column (`key`: what
    /// tells value `i` apart), into `idx`; new values are added PLAIN (`put`: the column's
    /// physical type and values).
    #[inline]
    fn num_indices(
        &mut self,
        idx: &mut Vec<u32>,
        put: (Phys, &Values),
        valid: Option<&[u8]>,
        a: usize,
        b: usize,
        key: impl Fn(usize) -> u128,
    ) {
        let Self {
            plain, len, num, ..
        } = self;
        validity::for_each(valid, a, b, |i| {
            let k = *num.entry(key(i)).or_insert_with(|| {
                put_plain_num(plain, put.0, put.1, i);
                *len += 1;
                *len - 1
            });
            idx.push(k);
        });
    }
}

/// Text entry `k` of a dictionary's PLAIN bytes.
#[inline]
fn entry<'a>(plain: &'a [u8], starts: &[u32], k: u32) -> &'a [u8] {
    let s = starts[k as usize] as usize;
    let n = u32::from_le_bytes([plain[s], plain[s + 1], plain[s + 2], plain[s + 3]]) as usize;
    &plain[s + 4..s + 4 + n]
}

#[inline]
fn hash_bytes(v: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(v);
    h.finish()
}

/// One data page waiting in the arena.
struct PageRef {
    key: PageKey,
    num_values: u32,
    uncompressed: usize,
    encoding: Encoding,
}

/// One column of an open row group.
pub struct ChunkWriter {
    descr: ColumnDescPtr,
    phys: Phys,
    codec: PqCompression,
    dict: Option<Dictionary>,
    fell_back: bool,
    pages: Vec<PageRef>,
    store: ArenaStore,
    /// Values (nulls included) and nulls written.
    values: u64,
    nulls: u64,
    /// Statistics of values written PLAIN (dictionary entries are added at the end).
    range: Range,
    /// Uncompressed bytes of the pages so far (to size row groups).
    uncompressed: u64,
    /// Dictionary-index pages stored without compressing (zstd raw blocks) before the next
    /// probe; `None` while they compress (see [`STORED_PAGES`]).
    stored: Option<u32>,
}

/// When a page of dictionary indices shrinks by less than [`STORE_BELOW`] percent under zstd
/// (indices into a dictionary of a few hundred values are close to random bits), the chunk's
/// next index pages up to this many are stored in zstd frames of raw blocks, which any reader
/// decodes at no cost, and then one is compressed again to see. zstd spends about as much time
/// on such a page as on text, for nothing: on the benchmark, the months' admission dates, the
/// cities, departments, diagnoses and procedures.
const STORED_PAGES: u32 = 8;
/// See [`STORED_PAGES`].
const STORE_BELOW: usize = 4;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bits needed for values up to `max`.
fn bit_width(max: u32) -> u8 {
    (32 - max.leading_zeros()) as u8
}

/// `values` (each below `1 << width`, `width` at most 32) as bit-packed runs of the
/// RLE/bit-packed hybrid (padded with zeros to groups of eight).
fn bit_pack(out: &mut Vec<u8>, values: &[u32], width: u8) {
    let w = u32::from(width);
    debug_assert!((1..=32).contains(&w));
    debug_assert!(values.iter().all(|&v| u64::from(v) < 1u64 << w));
    for run in values.chunks(MAX_GROUPS_PER_RUN * 8) {
        let groups = run.len().div_ceil(8);
        varint(out, ((groups as u64) << 1) | 1);
        // a group of eight values is `width` bytes; the padding is left zero
        let start = out.len();
        out.resize(start + groups * usize::from(width), 0);
        let dst = &mut out[start..];
        let (mut acc, mut bits, mut pos) = (0u64, 0u32, 0usize);
        for &v in run {
            let v = u64::from(v);
            acc |= v << bits;
            bits += w;
            if bits >= 64 {
                dst[pos..pos + 8].copy_from_slice(&acc.to_le_bytes());
                pos += 8;
                bits -= 64;
                // the bits of `v` that did not fit (none when `bits` is 0: `v >> w` is 0)
                acc = v >> (w - bits);
            }
        }
        let rest = bits.div_ceil(8) as usize;
        dst[pos..pos + rest].copy_from_slice(&acc.to_le_bytes()[..rest]);
    }
}

/// Definition levels of rows `a..b` (`valid`: the validity bitmap, `None` = no nulls), with
/// the four-byte length of a v1 page; returns how many are not null.
fn encode_levels(out: &mut Vec<u8>, valid: Option<&[u8]>, a: usize, b: usize) -> usize {
    let n = b - a;
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    let present = validity::count(valid, a, b);
    if present == n {
        // one run of ones
        varint(out, (n as u64) << 1);
        out.push(1);
    } else if let Some(bits) = valid {
        for start in (a..b).step_by(MAX_GROUPS_PER_RUN * 8) {
            let end = (start + MAX_GROUPS_PER_RUN * 8).min(b);
            let groups = (end - start).div_ceil(8);
            varint(out, ((groups as u64) << 1) | 1);
            let first = out.len();
            if start % 8 == 0 {
                out.extend_from_slice(&bits[start / 8..start / 8 + groups]);
            } else {
                out.extend((0..groups).map(|g| validity::byte_at(bits, start + g * 8)));
            }
            // rows past `end` are not this run's
            let tail = (end - start) % 8;
            if tail != 0
                && let Some(last) = out.last_mut()
            {
                *last &= (1u8 << tail) - 1;
            }
            debug_assert_eq!(out.len() - first, groups);
        }
    }
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    present
}

/// The longest prefix of `v` of at most `max` bytes that ends on a character boundary.
fn utf8_prefix(v: &[u8], max: usize) -> &[u8] {
    let mut end = max.min(v.len());
    while end > 0 && end < v.len() && (v[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &v[..end]
}

/// An upper bound of every value starting with `prefix` that is at most `max` bytes of UTF-8:
/// the prefix with its last character incremented (None when no such bound is shorter).
fn utf8_upper_bound(v: &[u8], max: usize) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(utf8_prefix(v, max)).ok()?;
    let mut chars: Vec<char> = s.chars().collect();
    while let Some(c) = chars.pop() {
        let mut next = c as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(n) = char::from_u32(next) {
            chars.push(n);
            return Some(chars.into_iter().collect::<String>().into_bytes());
        }
    }
    None
}

impl ChunkWriter {
    /// A chunk of column `descr` holding `values`-shaped data; `dictionary` asks for one.
    pub fn new(
        descr: ColumnDescPtr,
        sample: &Values,
        codec: PqCompression,
        dictionary: bool,
        arena: &SpillArena,
    ) -> Result<Self> {
        let phys = match (sample, descr.physical_type()) {
            (Values::Bool(_), PhysicalType::BOOLEAN) => Phys::Bool,
            (Values::I32(_) | Values::I64(_) | Values::I128(_), PhysicalType::INT32) => Phys::I32,
            (Values::I64(_), PhysicalType::INT64) | (Values::I128(_), PhysicalType::INT64) => {
                Phys::I64
            }
            (Values::F64(_), PhysicalType::DOUBLE) => Phys::F64,
            (
                Values::Text { .. } | Values::Interned { .. } | Values::Dict { .. },
                PhysicalType::BYTE_ARRAY,
            ) => Phys::Bytes,
            (Values::I64(_) | Values::I128(_), PhysicalType::FIXED_LEN_BYTE_ARRAY) => {
                Phys::Flba(descr.type_length() as usize)
            }
            (v, t) => {
                return Err(ParquetError::General(format!(
                    "column {}: {t} cannot hold {v:?}",
                    descr.name()
                )));
            }
        };
        Ok(Self {
            descr,
            phys,
            codec,
            dict: (dictionary && phys != Phys::Bool).then(Dictionary::default),
            stored: None,
            fell_back: false,
            pages: Vec::new(),
            store: arena.store(),
            values: 0,
            nulls: 0,
            range: Range::Empty,
            uncompressed: 0,
        })
    }

    /// Uncompressed bytes of the pages written so far.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed
    }

    /// Appends every value of `col`, as pages.
    pub fn write(&mut self, col: &Column, comp: &mut Compressor) -> Result<()> {
        let n = col.len();
        if let Values::Dict { offsets, data, .. } = &col.values {
            // the last line of defence: no invalid text reaches a file (valid as a whole, and
            // every entry starts on a character)
            let bad = simdutf8::basic::from_utf8(data)
                .is_err()
                .then(|| std::str::from_utf8(data).err().map(|e| e.to_string()))
                .flatten()
                .or_else(|| {
                    offsets[..offsets.len() - 1]
                        .iter()
                        .any(|&o| data.get(o as usize).is_some_and(|&b| b & 0xC0 == 0x80))
                        .then(|| "an entry starts inside a character".to_string())
                });
            if let Some(e) = bad {
                return Err(ParquetError::General(format!(
                    "column {}: text that is not UTF-8 ({e})",
                    self.descr.name()
                )));
            }
            comp.map.clear();
            comp.map.resize(offsets.len() - 1, u32::MAX);
        }
        // the longest entry of a batch dictionary: pages that cannot reach PAGE_BYTES need no count
        let longest = match &col.values {
            Values::Dict { offsets, .. } => {
                offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as usize
            }
            _ => 0,
        };
        let valid = col.validity();
        let mut a = 0;
        while a < n {
            let mut b = (a + PAGE_ROWS).min(n);
            match &col.values {
                Values::Text { offsets, .. } => {
                    // cut text pages by size too (at least one value per page)
                    let limit = offsets[a] as usize + PAGE_BYTES;
                    if offsets[b] as usize > limit {
                        let k = offsets[a + 1..=b].partition_point(|&o| o as usize <= limit);
                        b = a + k.max(1);
                    }
                }
                Values::Dict { ids, offsets, .. } if (b - a) * longest > PAGE_BYTES => {
                    // the same cut, from the entries' lengths
                    let mut bytes = 0usize;
                    for i in a..b {
                        if valid.is_none_or(|bits| bits[i / 8] & (1 << (i % 8)) != 0) {
                            let k = ids[i] as usize;
                            bytes += (offsets[k + 1] - offsets[k]) as usize;
                            if bytes > PAGE_BYTES {
                                b = i.max(a + 1);
                                break;
                            }
                        }
                    }
                }
                _ => {}
            }
            self.write_page(col, a, b, comp)?;
            a = b;
        }
        // scratch is kept for the next batch, unless one huge page made it large
        if comp.body.capacity() > SCRATCH_BYTES {
            comp.body = Vec::new();
        }
        Ok(())
    }

    fn write_page(
        &mut self,
        col: &Column,
        a: usize,
        b: usize,
        comp: &mut Compressor,
    ) -> Result<()> {
        let mut body = std::mem::take(&mut comp.body);
        body.clear();
        let present = encode_levels(&mut body, col.validity(), a, b);
        // a page without nulls needs no bitmap
        let valid = col.validity().filter(|_| present < b - a);
        if let Values::Text { offsets, data } = &col.values {
            // the last line of defence: no invalid text reaches a file
            let span = &data[offsets[a] as usize..offsets[b] as usize];
            if simdutf8::basic::from_utf8(span).is_err()
                && let Err(e) = std::str::from_utf8(span)
            {
                return Err(ParquetError::General(format!(
                    "column {}: text that is not UTF-8 ({e})",
                    self.descr.name()
                )));
            }
        }
        if !self.fell_back
            && let Some(d) = self.dict.as_mut()
            && d.plain.len() > DICTIONARY_BYTES
        {
            // full: later pages are PLAIN, and only the entries are kept (for the page)
            self.fell_back = true;
            d.text = hashbrown::HashTable::new();
            d.starts = Vec::new();
            d.num = FxHashMap::default();
            d.plain.shrink_to_fit();
        }
        let encoding = match self.dict.as_mut() {
            // a page of nulls only is PLAIN (no values): it needs no dictionary page
            Some(d) if !self.fell_back && present > 0 => {
                let idx = &mut comp.idx;
                idx.clear();
                idx.reserve(present);
                let put = (self.phys, &col.values);
                match &col.values {
                    Values::Text { offsets, data } => {
                        validity::for_each(valid, a, b, |i| {
                            idx.push(d.text_index(text_entry(offsets, data, i as u32)));
                        });
                    }
                    Values::Dict { ids, offsets, data } => {
                        // each entry of the batch is looked up once
                        let map = &mut comp.map;
                        validity::for_each(valid, a, b, |i| {
                            let j = ids[i] as usize;
                            if map[j] == u32::MAX {
                                map[j] = d.text_index(text_entry(offsets, data, j as u32));
                            }
                            idx.push(map[j]);
                        });
                    }
                    Values::I32(v) => {
                        d.num_indices(idx, put, valid, a, b, |i| u128::from(v[i] as u32))
                    }
                    Values::I64(v) => {
                        d.num_indices(idx, put, valid, a, b, |i| u128::from(v[i] as u64))
                    }
                    Values::F64(v) => {
                        d.num_indices(idx, put, valid, a, b, |i| u128::from(v[i].to_bits()))
                    }
                    Values::I128(v) => d.num_indices(idx, put, valid, a, b, |i| v[i] as u128),
                    Values::Bool(v) => d.num_indices(idx, put, valid, a, b, |i| u128::from(v[i])),
                    Values::Interned { .. } => unreachable!("localized before it is written"),
                }
                let width = bit_width(d.len.saturating_sub(1)).max(1);
                body.push(width);
                if !idx.is_empty() {
                    bit_pack(&mut body, idx, width);
                }
                Encoding::RLE_DICTIONARY
            }
            _ => {
                self.put_plain(&mut body, col, a, b, valid);
                Encoding::PLAIN
            }
        };
        let uncompressed = body.len();
        let page = match self.stored {
            Some(n) if n > 0 && encoding == Encoding::RLE_DICTIONARY => {
                self.stored = Some(n - 1);
                Bytes::from(raw_zstd_frame(&body))
            }
            _ => {
                let page = comp.compress(&body)?;
                if encoding == Encoding::RLE_DICTIONARY
                    && matches!(self.codec, PqCompression::ZSTD(_))
                {
                    let saved = uncompressed.saturating_sub(page.len());
                    self.stored =
                        (saved * 100 < uncompressed * STORE_BELOW).then_some(STORED_PAGES);
                }
                page
            }
        };
        let key = PageStore::put(&mut self.store, page)?;
        self.pages.push(PageRef {
            key,
            num_values: (b - a) as u32,
            uncompressed,
            encoding,
        });
        self.values += (b - a) as u64;
        self.nulls += (b - a - present) as u64;
        self.uncompressed += uncompressed as u64;
        comp.body = body;
        Ok(())
    }

    /// PLAIN values of the non-null rows of `a..b` (`valid`: `None` when none is null), into
    /// `out` and the statistics.
    fn put_plain(
        &mut self,
        out: &mut Vec<u8>,
        col: &Column,
        a: usize,
        b: usize,
        valid: Option<&[u8]>,
    ) {
        let range = &mut self.range;
        match (&col.values, self.phys) {
            (Values::Text { offsets, data }, _) => {
                out.reserve((b - a) * 4 + (offsets[b] - offsets[a]) as usize);
                validity::for_each(valid, a, b, |i| {
                    let v = &data[offsets[i] as usize..offsets[i + 1] as usize];
                    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    out.extend_from_slice(v);
                    range.bytes(v);
                });
            }
            (Values::Dict { ids, offsets, data }, _) => {
                validity::for_each(valid, a, b, |i| {
                    let v = text_entry(offsets, data, ids[i]);
                    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    out.extend_from_slice(v);
                    range.bytes(v);
                });
            }
            (Values::Bool(v), _) => {
                let (mut acc, mut bits) = (0u8, 0u32);
                validity::for_each(valid, a, b, |i| {
                    acc |= u8::from(v[i]) << bits;
                    bits += 1;
                    if bits == 8 {
                        out.push(acc);
                        (acc, bits) = (0, 0);
                    }
                    range.boolean(v[i]);
                });
                if bits > 0 {
                    out.push(acc);
                }
            }
            (Values::F64(v), _) => {
                out.reserve((b - a) * 8);
                validity::for_each(valid, a, b, |i| {
                    out.extend_from_slice(&v[i].to_le_bytes());
                    range.float(v[i]);
                });
            }
            (Values::I32(v), Phys::I32) => {
                put_ints(out, range, valid, &v[a..b], a, i32::to_le_bytes)
            }
            (Values::I64(v), Phys::I32) => {
                put_ints(out, range, valid, &v[a..b], a, |x| (x as i32).to_le_bytes())
            }
            (Values::I128(v), Phys::I32) => {
                put_ints(out, range, valid, &v[a..b], a, |x| (x as i32).to_le_bytes())
            }
            (Values::I64(v), Phys::I64) => {
                put_ints(out, range, valid, &v[a..b], a, i64::to_le_bytes)
            }
            (Values::I128(v), Phys::I64) => {
                put_ints(out, range, valid, &v[a..b], a, |x| (x as i64).to_le_bytes())
            }
            (values, phys) => validity::for_each(valid, a, b, |i| {
                put_plain_num(out, phys, values, i);
                range.int(int_value(values, i));
            }),
        }
    }

    /// Lays the chunk out: dictionary page, data pages, and their metadata.
    pub fn finish(mut self, comp: &mut Compressor) -> Result<(Bytes, ColumnCloseResult)> {
        let mut sink = TrackedWrite::new(Vec::new());
        let mut uncompressed = 0usize;
        let mut dict_offset = None;
        let mut data_offset = None;
        let mut encodings = vec![Encoding::RLE];
        let mut plain_pages = false;
        {
            let mut pw = SerializedPageWriter::new(&mut sink);
            if let Some(d) = self.dict.as_ref().filter(|d| d.len > 0) {
                let page = Page::DictionaryPage {
                    buf: comp.compress(&d.plain)?,
                    num_values: d.len,
                    encoding: Encoding::PLAIN,
                    is_sorted: false,
                };
                let spec = pw.write_page(CompressedPage::new(page, d.plain.len()))?;
                dict_offset = Some(spec.offset as i64);
                uncompressed += spec.uncompressed_size;
                encodings.push(Encoding::RLE_DICTIONARY);
                plain_pages = true; // the dictionary page itself
            }
            for p in std::mem::take(&mut self.pages) {
                let buf = PageStore::take(&mut self.store, p.key)?;
                plain_pages |= p.encoding == Encoding::PLAIN;
                let page = Page::DataPage {
                    buf,
                    num_values: p.num_values,
                    encoding: p.encoding,
                    def_level_encoding: Encoding::RLE,
                    rep_level_encoding: Encoding::RLE,
                    statistics: None,
                };
                let spec = pw.write_page(CompressedPage::new(page, p.uncompressed))?;
                data_offset.get_or_insert(spec.offset as i64);
                uncompressed += spec.uncompressed_size;
            }
        }
        if plain_pages {
            encodings.insert(0, Encoding::PLAIN);
        }
        let bytes = Bytes::from(sink.into_inner()?);
        let statistics = self.statistics();
        let metadata = ColumnChunkMetaData::builder(self.descr.clone())
            .set_encodings(encodings)
            .set_compression(self.codec)
            .set_num_values(self.values as i64)
            .set_total_compressed_size(bytes.len() as i64)
            .set_total_uncompressed_size(uncompressed as i64)
            .set_data_page_offset(data_offset.unwrap_or(0))
            .set_dictionary_page_offset(dict_offset)
            .set_statistics(statistics)
            .build()?;
        let close = ColumnCloseResult {
            bytes_written: bytes.len() as u64,
            rows_written: self.values,
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: None,
        };
        Ok((bytes, close))
    }

    /// The chunk's statistics: the PLAIN values' range and the dictionary's entries.
    fn statistics(&mut self) -> Statistics {
        let mut range = std::mem::take(&mut self.range);
        if let Some(d) = &self.dict {
            // every entry occurred in this chunk: the range of the dictionary-encoded values
            let width = match self.phys {
                Phys::I32 => 4,
                Phys::Flba(n) => n,
                Phys::Bytes | Phys::Bool => 0,
                Phys::I64 | Phys::F64 => 8,
            };
            let mut rest = &d.plain[..];
            while !rest.is_empty() {
                let (v, tail) = if width == 0 {
                    let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    (&rest[4..4 + n], &rest[4 + n..])
                } else {
                    rest.split_at(width)
                };
                rest = tail;
                match self.phys {
                    Phys::Bytes => range.bytes(v),
                    Phys::I32 => {
                        range.int(i128::from(i32::from_le_bytes([v[0], v[1], v[2], v[3]])))
                    }
                    Phys::I64 => range.int(i128::from(i64::from_le_bytes(
                        v.try_into().unwrap_or([0; 8]),
                    ))),
                    Phys::F64 => range.float(f64::from_le_bytes(v.try_into().unwrap_or([0; 8]))),
                    Phys::Flba(n) => {
                        let mut be = if v[0] & 0x80 != 0 {
                            [0xff; 16]
                        } else {
                            [0; 16]
                        };
                        be[16 - n..].copy_from_slice(v);
                        range.int(i128::from_be_bytes(be));
                    }
                    Phys::Bool => {}
                }
            }
        }
        let nulls = Some(self.nulls);
        let stats = self.range_statistics(range, nulls);
        // As the Arrow writer did: the deprecated min/max too where the order is signed (older
        // readers read only those), and a NaN count for doubles (IEEE 754 total order; no NaN
        // is ever parsed, and NaNs are never in the range).
        let signed = self.descr.sort_order().is_signed();
        match stats {
            Statistics::Boolean(s) => {
                Statistics::Boolean(s.with_backwards_compatible_min_max(signed))
            }
            Statistics::Int32(s) => Statistics::Int32(s.with_backwards_compatible_min_max(signed)),
            Statistics::Int64(s) => Statistics::Int64(s.with_backwards_compatible_min_max(signed)),
            Statistics::Double(s) => Statistics::Double(s.with_nan_count(Some(0))),
            other => other,
        }
    }

    fn range_statistics(&self, range: Range, nulls: Option<u64>) -> Statistics {
        match (range, self.phys) {
            (Range::Empty, Phys::Bool) => Statistics::boolean(None, None, None, nulls, false),
            (Range::Empty, Phys::I32) => Statistics::int32(None, None, None, nulls, false),
            (Range::Empty, Phys::I64) => Statistics::int64(None, None, None, nulls, false),
            (Range::Empty, Phys::F64) => Statistics::double(None, None, None, nulls, false),
            (Range::Empty, Phys::Bytes) => Statistics::byte_array(None, None, None, nulls, false),
            (Range::Empty, Phys::Flba(_)) => {
                Statistics::fixed_len_byte_array(None, None, None, nulls, false)
            }
            (Range::Bool(lo, hi), _) => Statistics::boolean(Some(lo), Some(hi), None, nulls, false),
            (Range::Int(lo, hi), Phys::I32) => {
                Statistics::int32(Some(lo as i32), Some(hi as i32), None, nulls, false)
            }
            (Range::Int(lo, hi), Phys::Flba(n)) => {
                let be = |v: i128| FixedLenByteArray::from(v.to_be_bytes()[16 - n..].to_vec());
                Statistics::fixed_len_byte_array(Some(be(lo)), Some(be(hi)), None, nulls, false)
            }
            (Range::Int(lo, hi), _) => {
                Statistics::int64(Some(lo as i64), Some(hi as i64), None, nulls, false)
            }
            (Range::Float(lo, hi), _) => {
                // zero bounds are signed so that readers never skip -0.0 or +0.0
                let lo = if lo == 0.0 { -0.0 } else { lo };
                let hi = if hi == 0.0 { 0.0 } else { hi };
                Statistics::double(Some(lo), Some(hi), None, nulls, false)
            }
            (Range::Bytes(lo, hi), _) => {
                let min_exact = lo.len() <= STATS_BYTES;
                let min = utf8_prefix(&lo, STATS_BYTES).to_vec();
                let (max, max_exact) = if hi.len() <= STATS_BYTES {
                    (hi, true)
                } else {
                    match utf8_upper_bound(&hi, STATS_BYTES) {
                        Some(b) => (b, false),
                        None => (hi, true),
                    }
                };
                Statistics::ByteArray(
                    ValueStatistics::new(
                        Some(ByteArray::from(min)),
                        Some(ByteArray::from(max)),
                        None,
                        nulls,
                        false,
                    )
                    .with_min_is_exact(min_exact)
                    .with_max_is_exact(max_exact),
                )
            }
        }
    }
}

/// Value `i` of an integer-like column (decimals unscaled).
#[inline]
fn int_value(values: &Values, i: usize) -> i128 {
    match values {
        Values::I32(v) => i128::from(v[i]),
        Values::I64(v) => i128::from(v[i]),
        Values::I128(v) => v[i],
        _ => unreachable!("not an integer column"),
    }
}

/// PLAIN bytes of the non-null values of `v` (rows `first..`; `valid`: the column's bitmap,
/// `None` when none of them is null), and their minimum and maximum into `range`.
#[inline]
fn put_ints<T: Copy + Ord + Into<i128>, const N: usize>(
    out: &mut Vec<u8>,
    range: &mut Range,
    valid: Option<&[u8]>,
    v: &[T],
    first: usize,
    le: impl Fn(T) -> [u8; N],
) {
    out.reserve(v.len() * N);
    let mut lo_hi: Option<(T, T)> = None;
    match valid {
        None => {
            v.iter().for_each(|&x| out.extend_from_slice(&le(x)));
            lo_hi = v
                .iter()
                .min()
                .zip(v.iter().max())
                .map(|(&lo, &hi)| (lo, hi));
        }
        Some(_) => validity::for_each(valid, first, first + v.len(), |i| {
            let x = v[i - first];
            out.extend_from_slice(&le(x));
            lo_hi = Some(match lo_hi {
                None => (x, x),
                Some((lo, hi)) => (lo.min(x), hi.max(x)),
            });
        }),
    }
    if let Some((lo, hi)) = lo_hi {
        range.int(lo.into());
        range.int(hi.into());
    }
}

/// PLAIN bytes of value `i` of an integer-like or float column.
#[inline]
fn put_plain_num(out: &mut Vec<u8>, phys: Phys, values: &Values, i: usize) {
    match (values, phys) {
        (Values::F64(v), _) => out.extend_from_slice(&v[i].to_le_bytes()),
        (_, Phys::I32) => out.extend_from_slice(&(int_value(values, i) as i32).to_le_bytes()),
        (_, Phys::Flba(n)) => out.extend_from_slice(&int_value(values, i).to_be_bytes()[16 - n..]),
        _ => out.extend_from_slice(&(int_value(values, i) as i64).to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The encoders as they were before they were made to use fewer instructions: the output
    // must not change by a byte.

    /// `values` as bit-packed runs of the RLE/bit-packed hybrid (padded to groups of eight).
    fn bit_pack_reference(out: &mut Vec<u8>, values: &[u32], width: u8) {
        for run in values.chunks(MAX_GROUPS_PER_RUN * 8) {
            let groups = run.len().div_ceil(8);
            varint(out, ((groups as u64) << 1) | 1);
            let (mut acc, mut bits) = (0u64, 0u32);
            for &v in run {
                acc |= u64::from(v) << bits;
                bits += u32::from(width);
                while bits >= 8 {
                    out.push(acc as u8);
                    acc >>= 8;
                    bits -= 8;
                }
            }
            // padding values are zeros
            let total_bits = groups * 8 * usize::from(width);
            let written = run.len() * usize::from(width);
            let mut pad = total_bits - written;
            while pad > 0 {
                let take = pad.min(8);
                bits += take as u32;
                pad -= take;
                while bits >= 8 {
                    out.push(acc as u8);
                    acc >>= 8;
                    bits -= 8;
                }
            }
        }
    }

    /// Definition levels of rows `a..b` (`valid`: the validity bitmap, `None` = no nulls), with
    /// the four-byte length of a v1 page; returns how many are not null.
    fn encode_levels_reference(
        out: &mut Vec<u8>,
        valid: Option<&[u8]>,
        a: usize,
        b: usize,
    ) -> usize {
        let n = b - a;
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        let present = match valid {
            None => n,
            Some(bits) => (a..b)
                .filter(|&i| bits[i / 8] & (1 << (i % 8)) != 0)
                .count(),
        };
        if present == n {
            // one run of ones
            varint(out, (n as u64) << 1);
            out.push(1);
        } else if let Some(bits) = valid {
            for start in (a..b).step_by(MAX_GROUPS_PER_RUN * 8) {
                let end = (start + MAX_GROUPS_PER_RUN * 8).min(b);
                let groups = (end - start).div_ceil(8);
                varint(out, ((groups as u64) << 1) | 1);
                if start % 8 == 0 {
                    let first = out.len();
                    out.extend_from_slice(&bits[start / 8..start / 8 + (end - start).div_ceil(8)]);
                    let tail = (end - start) % 8;
                    if tail != 0
                        && let Some(last) = out.last_mut()
                    {
                        *last &= (1u8 << tail) - 1;
                    }
                    debug_assert_eq!(out.len() - first, groups);
                } else {
                    for g in 0..groups {
                        let mut byte = 0u8;
                        for k in 0..8 {
                            let i = start + g * 8 + k;
                            if i < end && bits[i / 8] & (1 << (i % 8)) != 0 {
                                byte |= 1 << k;
                            }
                        }
                        out.push(byte);
                    }
                }
            }
        }
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        present
    }

    /// A name and which rows are not null.
    type Pattern = (&'static str, fn(usize) -> bool);

    /// Validity bitmaps of `rows` rows: no nulls, all nulls, and nulls around word and byte
    /// boundaries.
    fn bitmaps(rows: usize) -> Vec<(&'static str, Vec<u8>)> {
        let patterns: [Pattern; 8] = [
            ("none null", |_| true),
            ("all null", |_| false),
            ("every third null", |i| i % 3 != 0),
            ("null at 63", |i| i != 63),
            ("null at 64", |i| i != 64),
            ("null at 63..=65", |i| !(63..=65).contains(&i)),
            ("only 65 present", |i| i == 65),
            ("runs of 100", |i| (i / 100) % 2 == 0),
        ];
        patterns
            .into_iter()
            .map(|(name, p)| {
                let mut bits = vec![0u8; rows.div_ceil(8)];
                for i in (0..rows).filter(|&i| p(i)) {
                    bits[i / 8] |= 1 << (i % 8);
                }
                (name, bits)
            })
            .collect()
    }

    #[test]
    fn definition_levels_are_byte_for_byte_as_before() {
        let rows = 1200;
        for (name, bits) in bitmaps(rows) {
            for (a, b) in [
                (0, rows),
                (0, 63),
                (0, 64),
                (0, 65),
                (1, 2),
                (3, 700),
                (63, 65),
                (64, 1200),
                (65, 1100),
                (504, 1009),
                (7, 511),
            ] {
                for valid in [Some(&bits[..]), None] {
                    let (mut got, mut want) = (vec![9], vec![9]);
                    let n = encode_levels(&mut got, valid, a, b);
                    let m = encode_levels_reference(&mut want, valid, a, b);
                    assert_eq!((n, &got), (m, &want), "{name}, rows {a}..{b}");
                }
            }
        }
    }

    #[test]
    fn bit_packing_is_byte_for_byte_as_before() {
        for width in 1..=32u8 {
            let max = if width == 32 {
                u32::MAX
            } else {
                (1 << width) - 1
            };
            for len in [1, 7, 8, 9, 63, 64, 65, 503, 504, 505, 1000, 1008, 2017] {
                let values: Vec<u32> = (0..len as u32)
                    .map(|i| match i % 4 {
                        0 => max,
                        1 => 0,
                        _ => i.wrapping_mul(2_654_435_761) & max,
                    })
                    .collect();
                let (mut got, mut want) = (vec![7], vec![7]);
                bit_pack(&mut got, &values, width);
                bit_pack_reference(&mut want, &values, width);
                assert_eq!(got, want, "width {width}, {len} values");
            }
        }
    }

    #[test]
    fn bit_packed_runs_round_trip() {
        for width in 1..=20u8 {
            let values: Vec<u32> = (0..1000u32).map(|i| (i * 7919) % (1 << width)).collect();
            let mut out = Vec::new();
            bit_pack(&mut out, &values, width);
            // decode
            let mut got = Vec::new();
            let mut pos = 0;
            while got.len() < values.len() {
                let mut header = 0u64;
                let mut shift = 0;
                loop {
                    let b = out[pos];
                    pos += 1;
                    header |= u64::from(b & 0x7f) << shift;
                    shift += 7;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                assert_eq!(header & 1, 1, "bit-packed run");
                let count = (header >> 1) as usize * 8;
                assert!(count <= MAX_GROUPS_PER_RUN * 8);
                let (mut acc, mut bits) = (0u64, 0u32);
                for _ in 0..count {
                    while bits < u32::from(width) {
                        acc |= u64::from(out[pos]) << bits;
                        pos += 1;
                        bits += 8;
                    }
                    got.push((acc & ((1 << width) - 1)) as u32);
                    acc >>= width;
                    bits -= u32::from(width);
                }
            }
            assert_eq!(pos, out.len(), "width {width}: no stray bytes");
            assert_eq!(&got[..values.len()], &values[..], "width {width}");
            assert!(got[values.len()..].iter().all(|&v| v == 0), "zero padding");
        }
    }

    #[test]
    fn text_statistics_are_truncated_to_bounds() {
        let long = "é".repeat(40); // 80 bytes
        let p = utf8_prefix(long.as_bytes(), STATS_BYTES);
        assert_eq!(p.len(), 64);
        assert!(std::str::from_utf8(p).is_ok());
        let up = utf8_upper_bound(long.as_bytes(), STATS_BYTES).unwrap();
        assert!(up.as_slice() > long.as_bytes(), "an upper bound");
        assert!(up.len() <= STATS_BYTES);
        assert_eq!(
            utf8_upper_bound("\u{10FFFF}".repeat(20).as_bytes(), STATS_BYTES),
            None,
            "no shorter bound exists"
        );
    }

    #[test]
    fn stored_zstd_frames_decode_to_their_input() {
        for n in [
            0usize,
            1,
            100,
            128 * 1024 - 1,
            128 * 1024,
            128 * 1024 + 1,
            300_000,
        ] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 + i / 3) as u8).collect();
            let frame = raw_zstd_frame(&data);
            assert_eq!(
                frame.len(),
                data.len() + 13 + 3 * n.div_ceil(128 * 1024).max(1)
            );
            let back = zstd::bulk::decompress(&frame, n + 1).unwrap();
            assert_eq!(back, data, "{n} bytes");
            let mut streamed = Vec::new();
            std::io::Read::read_to_end(&mut zstd::Decoder::new(&frame[..]).unwrap(), &mut streamed)
                .unwrap();
            assert_eq!(streamed, data, "{n} bytes, streamed");
        }
    }

    #[test]
    fn bit_widths() {
        assert_eq!(bit_width(0), 0);
        assert_eq!(bit_width(1), 1);
        assert_eq!(bit_width(255), 8);
        assert_eq!(bit_width(256), 9);
    }
}
