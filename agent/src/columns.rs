//! Column buffers: typed values of one partition, accumulated until they are written or spilled.
//!
//! Owns the mapping from contract types (after pseudonymisation) to Arrow types, the Arrow schema
//! of the Parquet body (with each column's source header in field metadata) and the builders that
//! collect values. It does not parse text: values arrive typed.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::contract::ColumnType;

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

/// One column's values in the making.
pub enum ColumnBuilder {
    Int(Int32Builder),
    BigInt(Int64Builder),
    Double(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Boolean(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMillisecondBuilder),
    String(StringBuilder),
}

impl ColumnBuilder {
    /// A builder sized for `rows` values (and `bytes` of text for strings), so that a buffer
    /// refilled to its previous size never reallocates.
    pub fn with_capacity(t: ColumnType, rows: usize, bytes: usize) -> Self {
        match t {
            ColumnType::String => Self::String(StringBuilder::with_capacity(rows, bytes)),
            ColumnType::Int => Self::Int(Int32Builder::with_capacity(rows)),
            ColumnType::BigInt => Self::BigInt(Int64Builder::with_capacity(rows)),
            ColumnType::Double => Self::Double(Float64Builder::with_capacity(rows)),
            ColumnType::Decimal { precision, scale } => {
                Self::Decimal(Decimal128Builder::with_capacity(rows), precision, scale)
            }
            ColumnType::Boolean => Self::Boolean(BooleanBuilder::with_capacity(rows)),
            ColumnType::Date => Self::Date(Date32Builder::with_capacity(rows)),
            ColumnType::Timestamp => {
                Self::Timestamp(TimestampMillisecondBuilder::with_capacity(rows))
            }
        }
    }

    /// Bytes of string data held (0 for other types).
    fn text_bytes(&self) -> usize {
        match self {
            Self::String(b) => b.values_slice().len(),
            _ => 0,
        }
    }

    pub fn append_null(&mut self) {
        match self {
            Self::Int(b) => b.append_null(),
            Self::BigInt(b) => b.append_null(),
            Self::Double(b) => b.append_null(),
            Self::Decimal(b, _, _) => b.append_null(),
            Self::Boolean(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Timestamp(b) => b.append_null(),
            Self::String(b) => b.append_null(),
        }
    }

    /// Appends an integer-like value (int, bigint, date days, timestamp millis).
    pub fn append_i64(&mut self, v: i64) {
        match self {
            // The parser bounded int values to i32 and dates to i32 days.
            Self::Int(b) => b.append_value(v as i32),
            Self::Date(b) => b.append_value(v as i32),
            Self::BigInt(b) => b.append_value(v),
            Self::Timestamp(b) => b.append_value(v),
            _ => unreachable!("append_i64 on a non-integer column"),
        }
    }

    pub fn append_f64(&mut self, v: f64) {
        match self {
            Self::Double(b) => b.append_value(v),
            _ => unreachable!("append_f64 on a non-double column"),
        }
    }

    pub fn append_i128(&mut self, v: i128) {
        match self {
            Self::Decimal(b, _, _) => b.append_value(v),
            _ => unreachable!("append_i128 on a non-decimal column"),
        }
    }

    pub fn append_bool(&mut self, v: bool) {
        match self {
            Self::Boolean(b) => b.append_value(v),
            _ => unreachable!("append_bool on a non-boolean column"),
        }
    }

    pub fn append_str(&mut self, v: &str) {
        match self {
            Self::String(b) => b.append_value(v),
            _ => unreachable!("append_str on a non-string column"),
        }
    }

    /// Takes the values out as an array, leaving the builder empty (and its memory released).
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int(b) => Arc::new(b.finish()),
            Self::BigInt(b) => Arc::new(b.finish()),
            Self::Double(b) => Arc::new(b.finish()),
            Self::Decimal(b, p, s) => {
                let a = b.finish();
                // precision/scale were validated by the contract (p <= 38, s <= p)
                Arc::new(
                    a.with_precision_and_scale(*p, *s)
                        .unwrap_or_else(|e| unreachable!("{e}")),
                )
            }
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
            Self::String(b) => Arc::new(b.finish()),
        }
    }
}

/// Builders for every body column of one partition.
pub struct BatchBuilder {
    types: Vec<ColumnType>,
    pub cols: Vec<ColumnBuilder>,
    pub rows: usize,
    /// Estimated bytes held.
    pub bytes: usize,
}

impl BatchBuilder {
    pub fn new(types: &[ColumnType]) -> Self {
        Self {
            types: types.to_vec(),
            cols: types
                .iter()
                .map(|&t| ColumnBuilder::with_capacity(t, 1024, 16 * 1024))
                .collect(),
            rows: 0,
            bytes: 0,
        }
    }

    /// Takes the accumulated rows as a batch; the builders start again with the capacity this
    /// batch needed (partitions tend to fill to the same size between flushes).
    pub fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let rows = self.rows;
        let arrays: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .zip(&self.types)
            .map(|(c, &t)| {
                let text = c.text_bytes();
                let a = c.finish();
                *c = ColumnBuilder::with_capacity(t, rows + rows / 8, text + text / 8);
                a
            })
            .collect();
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(schema.clone(), arrays)
    }

    /// Releases the builders' memory (after the last batch of a partition).
    pub fn release(&mut self) {
        for (c, &t) in self.cols.iter_mut().zip(&self.types) {
            *c = ColumnBuilder::with_capacity(t, 0, 0);
        }
    }
}
