//! Column buffers: the typed values of one partition, accumulated until they are encoded.
//!
//! Owns the mapping from contract types (after pseudonymisation) to Arrow types, the Arrow schema
//! of the Parquet body (with each column's source header in field metadata) and the buffers that
//! collect values row by row. Buffers are plain vectors with a lazily materialised validity
//! bitmap, handed to Arrow without copying. Text arrives as bytes already known to be UTF-8 (the
//! decoder transcodes or the pipeline checks each record); Arrow checks the whole buffer once more
//! when the array is built, so an invalid byte can never reach a file. It does not parse text.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_buffer::{Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::contract::ColumnType;
use crate::intern::Interner;

/// Field metadata key holding the column's header as exported.
pub const SOURCE_NAME_KEY: &str = "lakemesh.source_name";

pub fn arrow_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int => DataType::Int32,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
    }
}

/// Schema of the Parquet body: `(name, output type, source header)` per written column.
pub fn body_schema(cols: &[(String, ColumnType, String)]) -> SchemaRef {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(name, t, src)| {
            Field::new(name, arrow_type(*t), true)
                .with_metadata(HashMap::from([(SOURCE_NAME_KEY.to_string(), src.clone())]))
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The values of one column, by physical representation.
#[derive(Debug)]
pub enum Values {
    /// `int`, `date` (days since 1970-01-01).
    I32(Vec<i32>),
    /// `bigint`, `timestamp` (milliseconds since 1970-01-01 00:00).
    I64(Vec<i64>),
    F64(Vec<f64>),
    /// `decimal(p,s)`: the unscaled value.
    I128(Vec<i128>),
    Bool(Vec<bool>),
    /// `string`: value `i` is `data[offsets[i]..offsets[i + 1]]`.
    Text {
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    /// `string` in a partition's buffer, by number: value `i` is entry `ids[i]` of the column's
    /// [`Interner`], or, with [`PRIVATE`] set, entry `ids[i] & !PRIVATE` of `offsets`/`data`
    /// (values the interner does not hold). [`Column::localize`] makes it [`Values::Dict`].
    Interned {
        ids: Vec<u32>,
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
    /// `string` handed to an encoder: value `i` is entry `ids[i]` of `offsets`/`data`, the
    /// values of the batch in order of first appearance (a value may appear twice).
    Dict {
        ids: Vec<u32>,
        offsets: Vec<i32>,
        data: Vec<u8>,
    },
}

/// Marks a number of [`Values::Interned`] that is an entry of the buffer itself.
pub const PRIVATE: u32 = 1 << 31;

/// Entry `k` of text held as offsets and bytes.
#[inline]
pub fn text_entry<'a>(offsets: &[i32], data: &'a [u8], k: u32) -> &'a [u8] {
    let k = k as usize;
    &data[offsets[k] as usize..offsets[k + 1] as usize]
}

/// One column's values in the making.
#[derive(Debug)]
pub struct Column {
    ty: ColumnType,
    pub values: Values,
    nulls: NullBufferBuilder,
}

impl Column {
    pub fn new(ty: ColumnType) -> Self {
        let values = match ty {
            ColumnType::String => Values::Text {
                offsets: vec![0],
                data: Vec::new(),
            },
            ColumnType::Int | ColumnType::Date => Values::I32(Vec::new()),
            ColumnType::BigInt | ColumnType::Timestamp => Values::I64(Vec::new()),
            ColumnType::Double => Values::F64(Vec::new()),
            // 18 digits fit 64 bits: the unscaled value in half the space
            ColumnType::Decimal { precision, .. } if precision <= 18 => Values::I64(Vec::new()),
            ColumnType::Decimal { .. } => Values::I128(Vec::new()),
            ColumnType::Boolean => Values::Bool(Vec::new()),
        };
        Self {
            ty,
            values,
            nulls: NullBufferBuilder::new(0),
        }
    }

    /// A column holding nothing and allocating nothing, to stand in for one moved away for a
    /// moment.
    pub fn placeholder() -> Self {
        Self {
            ty: ColumnType::Boolean,
            values: Values::Bool(Vec::new()),
            nulls: NullBufferBuilder::new(0),
        }
    }

    /// A `string` column whose values go through an [`Interner`] ([`Column::push_interned`]).
    pub fn interned() -> Self {
        Self {
            ty: ColumnType::String,
            values: Values::Interned {
                ids: Vec::new(),
                offsets: vec![0],
                data: Vec::new(),
            },
            nulls: NullBufferBuilder::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.nulls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nulls.is_empty()
    }

    /// Bytes allocated by the buffers (what a memory budget must count).
    pub fn allocated_bytes(&self) -> usize {
        let v = match &self.values {
            Values::I32(v) => v.capacity() * 4,
            Values::I64(v) => v.capacity() * 8,
            Values::F64(v) => v.capacity() * 8,
            Values::I128(v) => v.capacity() * 16,
            Values::Bool(v) => v.capacity(),
            Values::Text { offsets, data } => offsets.capacity() * 4 + data.capacity(),
            Values::Interned { ids, offsets, data } | Values::Dict { ids, offsets, data } => {
                ids.capacity() * 4 + offsets.capacity() * 4 + data.capacity()
            }
        };
        v + self.nulls.allocated_size()
    }

    #[inline]
    pub fn push_null(&mut self) {
        match &mut self.values {
            Values::I32(v) => v.push(0),
            Values::I64(v) => v.push(0),
            Values::F64(v) => v.push(0.0),
            Values::I128(v) => v.push(0),
            Values::Bool(v) => v.push(false),
            Values::Text { offsets, data } => offsets.push(data.len() as i32),
            Values::Interned { ids, .. } | Values::Dict { ids, .. } => ids.push(0),
        }
        self.nulls.append_null();
    }

    /// Appends an integer-like value: `int` and `date` take it as `i32` (the parser bounded
    /// them), `bigint` and `timestamp` as `i64`.
    #[inline(always)]
    pub fn push_i64(&mut self, x: i64) {
        match &mut self.values {
            Values::I32(v) => v.push(x as i32),
            Values::I64(v) => v.push(x),
            _ => unreachable!("push_i64 on a {:?} column", self.ty),
        }
        self.nulls.append_non_null();
    }

    #[inline]
    pub fn push_f64(&mut self, x: f64) {
        match &mut self.values {
            Values::F64(v) => v.push(x),
            _ => unreachable!("push_f64 on a {:?} column", self.ty),
        }
        self.nulls.append_non_null();
    }

    #[inline(always)]
    pub fn push_i128(&mut self, x: i128) {
        match &mut self.values {
            Values::I128(v) => v.push(x),
            // a decimal of at most 18 digits (the parser bounded it by the precision)
            Values::I64(v) => v.push(x as i64),
            _ => unreachable!("push_i128 on a {:?} column", self.ty),
        }
        self.nulls.append_non_null();
    }

    #[inline]
    pub fn push_bool(&mut self, x: bool) {
        match &mut self.values {
            Values::Bool(v) => v.push(x),
            _ => unreachable!("push_bool on a {:?} column", self.ty),
        }
        self.nulls.append_non_null();
    }

    /// Appends text. The bytes must be UTF-8: callers pass decoder output or checked records
    /// (and [`Column::finish`] verifies the whole buffer again).
    #[inline]
    pub fn push_text(&mut self, s: &[u8]) {
        match &mut self.values {
            Values::Text { offsets, data } => {
                data.extend_from_slice(s);
                offsets.push(data.len() as i32);
            }
            Values::Interned { ids, offsets, data } => {
                ids.push(PRIVATE | (offsets.len() - 1) as u32);
                data.extend_from_slice(s);
                offsets.push(data.len() as i32);
            }
            _ => unreachable!("push_text on a {:?} column", self.ty),
        }
        self.nulls.append_non_null();
    }

    /// Appends entry `k` of the column's interner (the column must be [`Column::interned`]).
    #[inline(always)]
    pub fn push_id(&mut self, k: u32) {
        let Values::Interned { ids, .. } = &mut self.values else {
            unreachable!("push_id on a {:?} column", self.ty)
        };
        ids.push(k);
        self.nulls.append_non_null();
    }

    /// Appends `buf[start..end]` as text through the column's interner: its number when the
    /// interner holds it (returns 0), else the value itself (returns its length, the bytes to
    /// count). The column must be [`Column::interned`].
    #[inline]
    pub fn push_interned(
        &mut self,
        interner: &mut Interner,
        buf: &[u8],
        start: usize,
        end: usize,
    ) -> usize {
        let Values::Interned { ids, .. } = &mut self.values else {
            unreachable!("push_interned on a {:?} column", self.ty)
        };
        match interner.intern_within(buf, start, end) {
            Some(k) => {
                ids.push(k);
                self.nulls.append_non_null();
                0
            }
            None => {
                self.push_text_within(buf, start, end);
                end - start
            }
        }
    }

    /// Appends `buf[start..end]` as text, like [`Column::push_text`]; short values that have
    /// 16 readable bytes after their start in `buf` are copied with one fixed-size move instead
    /// of a call to `memcpy` (most values of an export are a few bytes long).
    #[inline]
    pub fn push_text_within(&mut self, buf: &[u8], start: usize, end: usize) {
        let n = end - start;
        match &mut self.values {
            Values::Text { offsets, data } => {
                if n <= 16
                    && let Some(chunk) = buf.get(start..start + 16)
                    && let Ok(chunk) = <&[u8; 16]>::try_from(chunk)
                {
                    let old = data.len();
                    data.extend_from_slice(chunk);
                    data.truncate(old + n);
                } else {
                    data.extend_from_slice(&buf[start..end]);
                }
                offsets.push(data.len() as i32);
            }
            Values::Interned { ids, offsets, data } => {
                ids.push(PRIVATE | (offsets.len() - 1) as u32);
                data.extend_from_slice(&buf[start..end]);
                offsets.push(data.len() as i32);
            }
            _ => unreachable!("push_text on a {:?} column", self.ty),
        }
        self.nulls.append_non_null();
    }

    /// Drops values beyond the first `len` (undoing a row that turned out to be bad).
    pub fn truncate(&mut self, len: usize) {
        if self.len() <= len {
            return;
        }
        match &mut self.values {
            Values::I32(v) => v.truncate(len),
            Values::I64(v) => v.truncate(len),
            Values::F64(v) => v.truncate(len),
            Values::I128(v) => v.truncate(len),
            Values::Bool(v) => v.truncate(len),
            Values::Text { offsets, data } => {
                offsets.truncate(len + 1);
                data.truncate(offsets[len] as usize);
            }
            Values::Interned { ids, offsets, data } => {
                // the buffer's own entries of the values dropped are its last ones
                if let Some(k) = ids[len..]
                    .iter()
                    .filter(|&&id| id & PRIVATE != 0)
                    .map(|&id| (id & !PRIVATE) as usize)
                    .min()
                {
                    offsets.truncate(k + 1);
                    data.truncate(offsets[k] as usize);
                }
                ids.truncate(len);
            }
            Values::Dict { ids, .. } => ids.truncate(len),
        }
        self.nulls.truncate(len);
    }

    /// Empties the column, keeping its allocation (a block buffer refilled row by row).
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Appends value `i` of `src` (a column of the same type).
    #[cfg(test)]
    fn push_from(&mut self, src: &Column, i: usize) {
        if !src.nulls.is_valid(i) {
            self.push_null();
            return;
        }
        match (&mut self.values, &src.values) {
            (Values::I32(d), Values::I32(s)) => d.push(s[i]),
            (Values::I64(d), Values::I64(s)) => d.push(s[i]),
            (Values::F64(d), Values::F64(s)) => d.push(s[i]),
            (Values::I128(d), Values::I128(s)) => d.push(s[i]),
            (Values::Bool(d), Values::Bool(s)) => d.push(s[i]),
            (Values::Text { .. }, Values::Text { offsets, data }) => {
                let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
                self.push_text_within(data, a, b);
                return;
            }
            _ => unreachable!("{:?} value into a {:?} column", src.ty, self.ty),
        }
        self.nulls.append_non_null();
    }

    /// Appends the column's raw buffers to `out` (see [`BatchBuilder::encode_into`]).
    fn encode_into(&self, out: &mut Vec<u8>) {
        let n = self.len();
        match self.nulls.as_slice() {
            Some(bits) => {
                out.push(1);
                out.extend_from_slice(&bits[..n.div_ceil(8)]);
            }
            None => out.push(0),
        }
        match &self.values {
            Values::I32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Values::I64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Values::F64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Values::I128(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Values::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
            Values::Text { offsets, data } => {
                let base = offsets[0];
                for o in &offsets[1..] {
                    out.extend_from_slice(&((o - base) as u32).to_le_bytes());
                }
                let bytes = &data[base as usize..offsets[n] as usize];
                out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                out.extend_from_slice(bytes);
            }
            Values::Dict { ids, offsets, data } => {
                // as text: a batch set aside is read back into plain text buffers
                let valid = |i: usize| !self.is_null(i);
                let mut end = 0u32;
                for (i, &k) in ids.iter().enumerate() {
                    if valid(i) {
                        end += text_entry(offsets, data, k).len() as u32;
                    }
                    out.extend_from_slice(&end.to_le_bytes());
                }
                out.extend_from_slice(&(end as u64).to_le_bytes());
                for (i, &k) in ids.iter().enumerate() {
                    if valid(i) {
                        out.extend_from_slice(text_entry(offsets, data, k));
                    }
                }
            }
            Values::Interned { .. } => unreachable!("interned values are localized first"),
        }
    }

    /// Appends `n` values read from `buf` (written by [`Column::encode_into`]); returns the
    /// bytes read.
    fn decode_append(&mut self, buf: &[u8], n: usize) -> Option<usize> {
        let mut at = 0usize;
        let mut take = |k: usize| {
            let s = buf.get(at..at + k)?;
            at += k;
            Some(s)
        };
        let has_nulls = take(1)?[0] == 1;
        if has_nulls {
            let bits = take(n.div_ceil(8))?;
            for i in 0..n {
                self.nulls.append(bits[i / 8] & (1 << (i % 8)) != 0);
            }
        } else {
            self.nulls.append_n_non_nulls(n);
        }
        match &mut self.values {
            Values::I32(v) => v.extend(le_values(take(n * 4)?, i32::from_le_bytes)),
            Values::I64(v) => v.extend(le_values(take(n * 8)?, i64::from_le_bytes)),
            Values::F64(v) => v.extend(le_values(take(n * 8)?, f64::from_le_bytes)),
            Values::I128(v) => v.extend(le_values(take(n * 16)?, i128::from_le_bytes)),
            Values::Bool(v) => v.extend(take(n)?.iter().map(|&b| b != 0)),
            Values::Text { offsets, data } => {
                let base = data.len() as i32;
                let rel = take(n * 4)?;
                offsets.extend(
                    rel.chunks_exact(4)
                        .map(|c| base + u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i32),
                );
                let len = u64::from_le_bytes(take(8)?.try_into().ok()?) as usize;
                data.extend_from_slice(take(len)?);
            }
            Values::Interned { .. } | Values::Dict { .. } => return None,
        }
        Some(at)
    }

    /// The validity bitmap (bit `i` set: value `i` is not null), `None` when nothing is null.
    pub fn validity(&self) -> Option<&[u8]> {
        self.nulls.as_slice()
    }

    /// Whether value `i` is null.
    pub fn is_null(&self, i: usize) -> bool {
        !self.nulls.is_valid(i)
    }

    /// Takes the values out, leaving the column empty with room for about `rows` values of the
    /// size of the ones taken, so that a buffer refilled to the same size does not grow by
    /// copying.
    pub fn take_reserving(&mut self, rows: usize) -> Column {
        let taken = self.len().max(1);
        let mut fresh = Column::new(self.ty);
        match (&mut fresh.values, &self.values) {
            (Values::I32(v), _) => v.reserve(rows),
            (Values::I64(v), _) => v.reserve(rows),
            (Values::F64(v), _) => v.reserve(rows),
            (Values::I128(v), _) => v.reserve(rows),
            (Values::Bool(v), _) => v.reserve(rows),
            (Values::Text { offsets, data }, Values::Text { data: old, .. }) => {
                offsets.reserve(rows);
                data.reserve(old.len().div_ceil(taken) * rows);
            }
            (
                _,
                Values::Interned {
                    offsets: old_offsets,
                    data: old,
                    ..
                },
            ) => {
                fresh = Column::interned();
                if let Values::Interned { ids, offsets, data } = &mut fresh.values {
                    ids.reserve(rows);
                    offsets.reserve((old_offsets.len() - 1).div_ceil(taken) * rows);
                    data.reserve(old.len().div_ceil(taken) * rows);
                }
            }
            _ => {}
        }
        std::mem::replace(self, fresh)
    }

    /// Turns [`Values::Interned`] numbers into a dictionary of this column's own: the values
    /// it refers to, in order of first appearance, copied from `interner` (or from the buffer's
    /// own entries). `seen` is scratch, every slot `u32::MAX` (and left so). Other columns are
    /// left as they are.
    pub fn localize(&mut self, interner: &Interner, seen: &mut Vec<u32>) {
        let Values::Interned { ids, offsets, data } = &mut self.values else {
            return;
        };
        if seen.len() < interner.len() {
            seen.resize(interner.len(), u32::MAX);
        }
        let valid = self.nulls.as_slice();
        let mut dict_offsets = vec![0i32];
        let mut dict = Vec::new();
        let mut used: Vec<u32> = Vec::new();
        let mut local = |id: u32| {
            if id & PRIVATE != 0 {
                dict.extend_from_slice(text_entry(offsets, data, id & !PRIVATE));
                dict_offsets.push(dict.len() as i32);
                return (dict_offsets.len() - 2) as u32;
            }
            let slot = &mut seen[id as usize];
            if *slot == u32::MAX {
                dict.extend_from_slice(interner.get(id));
                dict_offsets.push(dict.len() as i32);
                *slot = (dict_offsets.len() - 2) as u32;
                used.push(id);
            }
            *slot
        };
        // 64 rows at a time, a word of the validity bitmap each (nulls become 0)
        for (w, rows) in ids.chunks_mut(64).enumerate() {
            let present = valid.map_or(u64::MAX, |bits| crate::validity::word(bits, w));
            for (j, id) in rows.iter_mut().enumerate() {
                *id = if present >> j & 1 != 0 { local(*id) } else { 0 };
            }
        }
        for g in used {
            seen[g as usize] = u32::MAX;
        }
        let ids = std::mem::take(ids);
        self.values = Values::Dict {
            ids,
            offsets: dict_offsets,
            data: dict,
        };
    }

    /// Takes the values out as an Arrow array, leaving the column empty with no memory held.
    pub fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let mut taken = self.take_reserving(0);
        let nulls = taken.nulls.finish();
        let values = std::mem::replace(&mut taken.values, Values::Bool(Vec::new()));

        Ok(match (values, self.ty) {
            (Values::I32(v), ColumnType::Date) => {
                Arc::new(Date32Array::try_new(ScalarBuffer::from(v), nulls)?)
            }
            (Values::I32(v), _) => Arc::new(Int32Array::try_new(ScalarBuffer::from(v), nulls)?),
            (Values::I64(v), ColumnType::Timestamp) => Arc::new(
                TimestampMillisecondArray::try_new(ScalarBuffer::from(v), nulls)?,
            ),
            (Values::I64(v), ColumnType::Decimal { precision, scale }) => Arc::new(
                Decimal128Array::try_new(v.into_iter().map(i128::from).collect(), nulls)?
                    .with_precision_and_scale(precision, scale)?,
            ),
            (Values::I64(v), _) => Arc::new(Int64Array::try_new(ScalarBuffer::from(v), nulls)?),
            (Values::F64(v), _) => Arc::new(Float64Array::try_new(ScalarBuffer::from(v), nulls)?),
            (Values::I128(v), ColumnType::Decimal { precision, scale }) => Arc::new(
                Decimal128Array::try_new(ScalarBuffer::from(v), nulls)?
                    .with_precision_and_scale(precision, scale)?,
            ),
            (Values::Bool(v), _) => Arc::new(BooleanArray::new(v.into_iter().collect(), nulls)),
            (Values::Text { offsets, data }, _) => Arc::new(StringArray::try_new(
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                Buffer::from_vec(data),
                nulls,
            )?),
            (Values::Dict { ids, offsets, data }, _) => {
                let valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
                let mut text = Vec::new();
                let mut ends = vec![0i32];
                for (i, &k) in ids.iter().enumerate() {
                    if valid(i) {
                        text.extend_from_slice(text_entry(&offsets, &data, k));
                    }
                    ends.push(text.len() as i32);
                }
                Arc::new(StringArray::try_new(
                    OffsetBuffer::new(ScalarBuffer::from(ends)),
                    Buffer::from_vec(text),
                    nulls,
                )?)
            }
            (v, t) => unreachable!("{t:?} column holding {v:?}"),
        })
    }
}

/// The values of `bytes`, `N` little-endian bytes each.
fn le_values<'a, const N: usize, T: 'a>(
    bytes: &'a [u8],
    f: fn([u8; N]) -> T,
) -> impl Iterator<Item = T> + 'a {
    bytes
        .chunks_exact(N)
        .map(move |c| f(c.try_into().unwrap_or([0; N])))
}

/// Buffers for every body column of one partition.
#[derive(Debug)]
pub struct BatchBuilder {
    pub cols: Vec<Column>,
    pub rows: usize,
}

impl BatchBuilder {
    pub fn new(types: &[ColumnType]) -> Self {
        Self {
            cols: types.iter().map(|&t| Column::new(t)).collect(),
            rows: 0,
        }
    }

    /// Buffers whose `string` columns marked in `interned` are [`Column::interned`].
    pub fn with_interned(types: &[ColumnType], interned: &[bool]) -> Self {
        Self {
            cols: types
                .iter()
                .enumerate()
                .map(|(i, &t)| {
                    if t == ColumnType::String && interned.get(i) == Some(&true) {
                        Column::interned()
                    } else {
                        Column::new(t)
                    }
                })
                .collect(),
            rows: 0,
        }
    }

    /// [`Column::localize`] for every column with an interner (by column).
    pub fn localize(&mut self, interners: &[Option<Interner>], seen: &mut Vec<u32>) {
        for (c, i) in self.cols.iter_mut().zip(interners) {
            if let Some(i) = i {
                c.localize(i, seen);
            }
        }
    }

    /// Bytes allocated by all columns.
    pub fn allocated_bytes(&self) -> usize {
        self.cols.iter().map(Column::allocated_bytes).sum()
    }

    /// Empties every column, keeping the allocations.
    pub fn clear(&mut self) {
        for c in &mut self.cols {
            c.clear();
        }
        self.rows = 0;
    }

    /// The rows as raw column buffers (to set them aside in a spill file).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.rows as u64).to_le_bytes());
        for c in &self.cols {
            c.encode_into(out);
        }
    }

    /// Appends the rows of `buf` (written by [`BatchBuilder::encode_into`] from buffers of the
    /// same column types); false when `buf` is not such a batch (the buffers are then unusable:
    /// the conversion fails).
    pub fn decode_append(&mut self, buf: &[u8]) -> bool {
        let Some(n) = buf
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(|b| u64::from_le_bytes(b) as usize)
        else {
            return false;
        };
        let mut at = 8;
        for c in &mut self.cols {
            match c.decode_append(&buf[at..], n) {
                Some(k) => at += k,
                None => return false,
            }
        }
        self.rows += n;
        at == buf.len()
    }

    /// Undoes a partly appended row: every column back to `self.rows` values.
    pub fn rollback(&mut self) {
        for c in &mut self.cols {
            c.truncate(self.rows);
        }
    }

    /// Takes the accumulated rows, leaving room for about `rows` more (see
    /// [`Column::take_reserving`]).
    pub fn take_reserving(&mut self, rows: usize) -> BatchBuilder {
        let cols = self
            .cols
            .iter_mut()
            .map(|c| c.take_reserving(rows))
            .collect();
        BatchBuilder {
            cols,
            rows: std::mem::take(&mut self.rows),
        }
    }

    /// Takes the accumulated rows as a batch and releases the buffers.
    pub fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
        let arrays = self
            .cols
            .iter_mut()
            .map(Column::finish)
            .collect::<Result<Vec<_>, _>>()?;
        self.rows = 0;
        RecordBatch::try_new(schema.clone(), arrays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn values_and_nulls_round_trip_into_arrow_types() {
        let types = [
            ColumnType::String,
            ColumnType::Int,
            ColumnType::BigInt,
            ColumnType::Double,
            ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
            ColumnType::Boolean,
            ColumnType::Date,
            ColumnType::Timestamp,
        ];
        let cols: Vec<(String, ColumnType, String)> = types
            .iter()
            .enumerate()
            .map(|(i, &t)| (format!("c{i}"), t, format!("C {i}")))
            .collect();
        let schema = body_schema(&cols);
        let mut b = BatchBuilder::new(&types);
        b.cols[0].push_text("Élodie".as_bytes());
        b.cols[1].push_i64(-7);
        b.cols[2].push_i64(1 << 40);
        b.cols[3].push_f64(1.5);
        b.cols[4].push_i128(123_456);
        b.cols[5].push_bool(true);
        b.cols[6].push_i64(19_000);
        b.cols[7].push_i64(1_700_000_000_000);
        b.rows += 1;
        for c in &mut b.cols {
            c.push_null();
        }
        b.rows += 1;
        let batch = b.finish(&schema).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let s = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(s.value(0), "Élodie");
        assert!(s.is_null(1));
        assert_eq!(batch.column(4).data_type(), &DataType::Decimal128(12, 2));
        assert_eq!(batch.column(6).data_type(), &DataType::Date32);
        assert_eq!(
            batch.column(7).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, None)
        );
        for c in batch.columns() {
            assert_eq!(c.null_count(), 1);
        }
        assert_eq!(
            batch.schema().field(3).metadata()[SOURCE_NAME_KEY],
            "C 3",
            "the source header travels in field metadata"
        );
        // finish leaves empty buffers that hold no memory
        assert_eq!(b.rows, 0);
        assert!(b.cols.iter().all(|c| c.is_empty()));
    }

    #[test]
    fn rollback_undoes_a_partial_row() {
        let types = [ColumnType::String, ColumnType::Int];
        let schema = body_schema(&[
            ("a".into(), ColumnType::String, "a".into()),
            ("b".into(), ColumnType::Int, "b".into()),
        ]);
        let mut b = BatchBuilder::new(&types);
        b.cols[0].push_text(b"kept");
        b.cols[1].push_null();
        b.rows += 1;
        b.cols[0].push_text(b"half a row");
        b.rollback();
        b.cols[0].push_text(b"next");
        b.cols[1].push_i64(2);
        b.rows += 1;
        let batch = b.finish(&schema).unwrap();
        let s = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((s.value(0), s.value(1)), ("kept", "next"));
        assert!(batch.column(1).is_null(0));
        assert!(batch.column(1).is_valid(1));
    }

    #[test]
    fn text_within_a_buffer_copies_exactly_the_range() {
        let buf = b"a,bb,0123456789abcdefXYZ,end-of-buffer";
        let mut c = Column::new(ColumnType::String);
        c.push_text_within(buf, 2, 4); // short, 16 bytes readable after it
        c.push_text_within(buf, 5, 24); // longer than 16
        c.push_text_within(buf, 25, buf.len()); // short, at the end of the buffer
        c.push_text_within(buf, 0, 0); // empty
        let a = c.finish().unwrap();
        let s = a.as_any().downcast_ref::<StringArray>().unwrap();
        let got: Vec<&str> = (0..s.len()).map(|i| s.value(i)).collect();
        assert_eq!(got, ["bb", "0123456789abcdefXYZ", "end-of-buffer", ""]);
    }

    #[test]
    fn taking_rows_leaves_an_empty_buffer_with_room() {
        let types = [ColumnType::String, ColumnType::BigInt];
        let mut b = BatchBuilder::new(&types);
        for i in 0..100i64 {
            if i % 3 == 0 {
                b.cols[0].push_null();
            } else {
                b.cols[0].push_text(format!("v{i:03}").as_bytes());
            }
            b.cols[1].push_i64(i);
            b.rows += 1;
        }
        let taken = b.take_reserving(50);
        assert_eq!(
            (taken.rows, taken.cols[0].len(), taken.cols[1].len()),
            (100, 100, 100)
        );
        assert!(taken.cols[0].is_null(0) && !taken.cols[0].is_null(1));
        assert_eq!((b.rows, b.cols[0].len()), (0, 0));
        match &b.cols[0].values {
            Values::Text { offsets, data } => {
                assert!(offsets.capacity() >= 50 && data.capacity() >= 50 * 3);
            }
            v => panic!("{v:?}"),
        }
        assert!(b.cols[0].validity().is_none(), "nothing null yet");
    }

    /// The values `interned_text_*` tests write: repeated codes, nulls, values too long for
    /// an interner, and distinct ones that fill a small one.
    fn mixed_text(i: usize) -> Option<String> {
        match i % 7 {
            0 => None,
            1 => Some("x".repeat(crate::intern::MAX_VALUE_BYTES + 1 + i % 3)),
            2 | 3 => Some(format!("P{i:010}")),
            _ => Some(["M", "F", "Saint-Étienne", "", "2A"][i % 5].to_string()),
        }
    }

    #[test]
    fn interned_text_comes_back_value_for_value() {
        // a small interner: it fills up, later new values stay in the buffer
        let mut interner = Interner::new(64 * 1024);
        let mut col = Column::interned();
        let mut want: Vec<Option<String>> = Vec::new();
        let mut seen = Vec::new();
        let mut taken = Vec::new();
        for i in 0..20_000 {
            let v = mixed_text(i);
            match &v {
                None => col.push_null(),
                Some(s) => {
                    let buf = format!("{s}|rest of the record");
                    col.push_interned(&mut interner, buf.as_bytes(), 0, s.len());
                }
            }
            if i % 1000 == 999 {
                // a bad row undone: a value the buffer holds itself, then one by number
                let n = col.len();
                col.push_text(b"never written");
                col.push_interned(&mut interner, b"M", 0, 1);
                col.truncate(n);
            }
            want.push(v);
            if i % 6000 == 5999 {
                let mut t = col.take_reserving(100);
                t.localize(&interner, &mut seen);
                taken.push(t);
            }
        }
        let mut t = col.take_reserving(0);
        t.localize(&interner, &mut seen);
        taken.push(t);
        assert!(seen.iter().all(|&s| s == u32::MAX), "scratch left clean");
        assert!(
            interner.len() > 100,
            "the codes and the first ids are interned"
        );
        let mut got: Vec<Option<String>> = Vec::new();
        let mut text = Column::new(ColumnType::String);
        for t in &mut taken {
            assert!(matches!(t.values, Values::Dict { .. }));
            let mut buf = Vec::new();
            t.encode_into(&mut buf);
            assert_eq!(text.decode_append(&buf, t.len()), Some(buf.len()));
            let a = t.finish().unwrap();
            let a = a.as_any().downcast_ref::<StringArray>().unwrap();
            got.extend(a.iter().map(|v| v.map(str::to_string)));
        }
        assert_eq!(got, want, "through Arrow");
        let a = text.finish().unwrap();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        let back: Vec<Option<String>> = a.iter().map(|v| v.map(str::to_string)).collect();
        assert_eq!(back, want, "through the spill format");
    }

    #[test]
    fn batches_set_aside_come_back_appended_value_for_value() {
        let types = [
            ColumnType::String,
            ColumnType::Int,
            ColumnType::BigInt,
            ColumnType::Double,
            ColumnType::Decimal {
                precision: 30,
                scale: 2,
            },
            ColumnType::Boolean,
        ];
        let mut a = BatchBuilder::new(&types);
        let mut b = BatchBuilder::new(&types);
        for (k, x) in [&mut a, &mut b].into_iter().enumerate() {
            for i in 0..(10 + k as i64) {
                if i % 4 == 1 {
                    x.cols.iter_mut().for_each(Column::push_null);
                } else {
                    x.cols[0].push_text(format!("é{i}-{k}").as_bytes());
                    x.cols[1].push_i64(-i);
                    x.cols[2].push_i64(i << 40);
                    x.cols[3].push_f64(i as f64 / 3.0);
                    x.cols[4].push_i128(-(i as i128) << 100);
                    x.cols[5].push_bool(i % 2 == 0);
                }
                x.rows += 1;
            }
        }
        let mut all = BatchBuilder::new(&types);
        let mut buf = Vec::new();
        for x in [&a, &b] {
            buf.clear();
            x.encode_into(&mut buf);
            assert!(all.decode_append(&buf));
        }
        assert!(
            !BatchBuilder::new(&types).decode_append(&buf[..buf.len() - 1]),
            "a cut segment is refused"
        );
        let cols: Vec<(String, ColumnType, String)> = types
            .iter()
            .enumerate()
            .map(|(i, &t)| (format!("c{i}"), t, String::new()))
            .collect();
        let schema = body_schema(&cols);
        let got = all.finish(&schema).unwrap();
        let want = joined(&schema, &[a, b]);
        assert_eq!(got, want);
    }

    /// The expected rows: `parts` one after the other, copied value by value.
    fn joined(schema: &SchemaRef, parts: &[BatchBuilder]) -> RecordBatch {
        let types: Vec<ColumnType> = parts[0].cols.iter().map(|c| c.ty).collect();
        let mut joined = BatchBuilder::new(&types);
        for p in parts.iter() {
            for i in 0..p.rows {
                for (d, s) in joined.cols.iter_mut().zip(&p.cols) {
                    d.push_from(s, i);
                }
                joined.rows += 1;
            }
        }
        joined.finish(schema).unwrap()
    }

    #[test]
    fn invalid_utf8_never_becomes_an_array() {
        let mut c = Column::new(ColumnType::String);
        c.push_text(b"caf\xe9");
        assert!(c.finish().is_err());
    }

    #[test]
    fn allocation_is_counted() {
        let mut c = Column::new(ColumnType::String);
        let before = c.allocated_bytes();
        for _ in 0..1000 {
            c.push_text(b"0123456789");
        }
        assert!(c.allocated_bytes() >= before + 10_000);
        c.finish().unwrap();
        assert!(c.allocated_bytes() <= 64, "finish releases the buffers");
    }
}
