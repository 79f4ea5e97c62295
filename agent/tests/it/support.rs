//! Test support: tiny contracts and CSV fixtures on disk, and Parquet output read back as rows.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, TimestampMillisecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use lakemesh_agent::contract::Contract;
use lakemesh_agent::convert::{ConvertError, ConvertOptions, ConvertReport, convert_file};
use lakemesh_agent::datefmt::{format_date, format_timestamp_millis};
use lakemesh_agent::parse::format_decimal;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

pub type Row = BTreeMap<String, Value>;

/// A converted table, read back.
pub struct Table {
    pub files: Vec<PathBuf>,
    /// (name, Arrow type, field metadata) of the file body.
    pub schema: Vec<(String, DataType, arrow_schema::Metadata)>,
    pub rows: Vec<Row>,
    pub row_groups: usize,
}

impl Table {
    pub fn column(&self, name: &str) -> Vec<Value> {
        self.rows
            .iter()
            .map(|r| r.get(name).cloned().unwrap_or(Value::Null))
            .collect()
    }

    pub fn field_type(&self, name: &str) -> &DataType {
        &self
            .schema
            .iter()
            .find(|f| f.0 == name)
            .unwrap_or_else(|| panic!("no column {name}"))
            .1
    }

    pub fn find(&self, key: &str, value: &str) -> &Row {
        let hits: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.get(key) == Some(&Value::String(value.into())))
            .collect();
        assert_eq!(hits.len(), 1, "rows with {key} = {value:?}");
        hits[0]
    }
}

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    pub fn out(&self) -> PathBuf {
        self.path("out")
    }

    pub fn convert(
        &self,
        contract: &str,
        csv_name: &str,
        csv: impl AsRef<[u8]>,
    ) -> Result<ConvertReport, ConvertError> {
        let c = Contract::from_toml(contract, Path::new("test.toml")).unwrap();
        let input = self.write(csv_name, csv);
        convert_file(&c, &input, &ConvertOptions::new(self.out()))
    }
}

/// Reads every Parquet file under `dir` (recursively), adding Hive partition values (as strings)
/// from the folder names.
pub fn read_table(dir: &Path) -> Table {
    let mut files = Vec::new();
    collect(dir, &mut files);
    files.sort();
    let mut rows = Vec::new();
    let mut schema = Vec::new();
    let mut row_groups = 0;
    for f in &files {
        let parts: Vec<(String, String)> = f
            .strip_prefix(dir)
            .unwrap()
            .parent()
            .unwrap()
            .components()
            .filter_map(|c| {
                let s = c.as_os_str().to_string_lossy().into_owned();
                s.split_once('=').map(|(k, v)| (k.to_string(), unescape(v)))
            })
            .collect();
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(f).unwrap()).unwrap();
        row_groups += builder.metadata().num_row_groups();
        let s = builder.schema().clone();
        schema = s
            .fields()
            .iter()
            .map(|f| {
                (
                    f.name().clone(),
                    f.data_type().clone(),
                    f.metadata().clone(),
                )
            })
            .collect();
        for batch in builder.build().unwrap() {
            let batch = batch.unwrap();
            rows.extend(batch_rows(&batch, &parts));
        }
    }
    Table {
        files,
        schema,
        rows,
        row_groups,
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn batch_rows(batch: &RecordBatch, parts: &[(String, String)]) -> Vec<Row> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|i| {
            let mut row = Row::new();
            for (k, v) in parts {
                row.insert(k.clone(), Value::String(v.clone()));
            }
            for (c, field) in schema.fields().iter().enumerate() {
                row.insert(field.name().clone(), value_at(batch.column(c).as_ref(), i));
            }
            row
        })
        .collect()
}

/// The JSON convention of the fixtures: dates `YYYY-MM-DD`, timestamps `YYYY-MM-DD HH:MM:SS`,
/// decimals as scale-padded strings, integers as numbers.
pub fn value_at(a: &dyn Array, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    match a.data_type() {
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_string()),
        DataType::Int32 => Value::from(a.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => Value::from(a.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => Value::from(a.as_primitive::<Float64Type>().value(i)),
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Date32 => Value::String(format_date(a.as_primitive::<Date32Type>().value(i))),
        DataType::Timestamp(TimeUnit::Millisecond, None) => Value::String(format_timestamp_millis(
            a.as_primitive::<TimestampMillisecondType>().value(i),
        )),
        DataType::Decimal128(_, s) => Value::String(format_decimal(
            a.as_primitive::<Decimal128Type>().value(i),
            *s,
        )),
        t => panic!("unexpected type {t}"),
    }
}

/// The team folder's corpus, if present.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("LAKEMESH_CORPUS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("LAKEMESH_SHARED").map(|d| PathBuf::from(d).join("corpus/files"))
        })
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
                .join("../../shared/corpus/files")
        });
    dir.is_dir().then_some(dir)
}

pub fn fixture(rel: &str) -> PathBuf {
    std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("tests/fixtures")
        .join(rel)
}
