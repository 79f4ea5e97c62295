//! `lakemesh-syncd preview`: what one principal would see of one table under the policy,
//! computed locally from the product's Parquet (a folder or an S3 prefix), without Lake
//! Formation.
//!
//! Reads every Parquet file of the product (Hive layout: partition values come from the
//! `k=v/` folder names, `__HIVE_DEFAULT_PARTITION__` is NULL, `%XX` escapes decoded), lints the
//! policy against the table the files make (columns and types, partition keys as strings, as
//! Glue catalogs them), resolves the principal's access ([`Policy::access`]), evaluates the row
//! filters on every batch with [`Evaluator`] (Arrow kernels; a row is visible only when its
//! condition is TRUE) and projects the visible columns (data and partition columns alike).
//! Keeps counts and the first `limit` visible rows only, so memory does not grow with the data.
//!
//! Does not own: the filter semantics (`evaluate`), the policy (`policy`), Lake Formation's own
//! enforcement (that is what `verify` probes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, DecimalType, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, TimestampMillisecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use crate::aws_error::AwsError;
use crate::config::Settings;
use crate::evaluate::{EvalError, Evaluator};
use crate::policy::{Access, ManagedTable, Policy, PolicyError, TableRef};
use crate::s3::S3;

/// Rows shown by default.
pub const DEFAULT_LIMIT: usize = 10;
/// Hive's folder name for a NULL partition value.
pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// Where the product's Parquet is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// A local folder: the product folder (or its parent holding a folder named after the table).
    Local(PathBuf),
    /// `s3://bucket/prefix`: the product folder in a bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix of the product folder (no leading `/`, ends with `/` unless empty).
        prefix: String,
    },
}

impl DataSource {
    /// `s3://bucket/prefix` or a local path.
    pub fn parse(text: &str) -> Result<Self, PreviewError> {
        match text.strip_prefix("s3://") {
            None => Ok(Self::Local(PathBuf::from(text))),
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(PreviewError::Data(format!("{text:?}: no bucket")));
                }
                let mut prefix = prefix.trim_start_matches('/').to_owned();
                if !prefix.is_empty() && !prefix.ends_with('/') {
                    prefix.push('/');
                }
                Ok(Self::S3 {
                    bucket: bucket.to_owned(),
                    prefix,
                })
            }
        }
    }
}

/// Why a preview cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The principal may not read the table: what Lake Formation would answer.
    #[error("principal {principal} may not read table {table}: {reason}")]
    Refused {
        /// The principal.
        principal: String,
        /// The table.
        table: String,
        /// Why.
        reason: String,
    },
    /// The table is not one the registry makes.
    #[error("table {table}: {reason}")]
    Table {
        /// `db.table` as given.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// The data cannot be read or does not make one table.
    #[error("{0}")]
    Data(String),
    /// A file cannot be read.
    #[error("{file}: {reason}")]
    File {
        /// Path or `s3://` URL.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// The policy does not fit the table.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A row filter cannot be evaluated on the data.
    #[error("row filter {filter:?}: {source}")]
    Filter {
        /// The filter.
        filter: String,
        /// Why.
        source: EvalError,
    },
    /// Listing or reading S3.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// What the principal would see.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// `db.table`.
    pub table: String,
    /// The principal.
    pub principal: String,
    /// The access the policy gives, in words.
    pub access: String,
    /// The row condition (filters OR-ed), if any.
    pub row_filter: Option<String>,
    /// Visible columns and their Athena types, in table order.
    pub columns: Vec<ColumnInfo>,
    /// Columns of the table the principal does not see.
    pub hidden_columns: Vec<String>,
    /// Parquet files read.
    pub files: usize,
    /// Rows in the data.
    pub rows_total: u64,
    /// Rows the principal sees.
    pub rows_visible: u64,
    /// The first visible rows (visible columns only; NULL as `None`).
    pub sample: Vec<Vec<Option<String>>>,
}

/// A column and its Athena type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnInfo {
    /// Name.
    pub name: String,
    /// Athena type (`string`, `decimal(12,2)`).
    #[serde(rename = "type")]
    pub ty: String,
}

/// One Parquet file of the product and its partition values (key order of the path).
struct Part {
    name: String,
    partition: Vec<(String, Option<String>)>,
    body: Body,
}

enum Body {
    File(PathBuf),
    Bytes(bytes::Bytes),
}

/// The Athena type Glue gives an Arrow type, as the agent writes them.
pub fn athena_type(ty: &DataType) -> String {
    match ty {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        other => format!("{other}").to_lowercase(),
    }
}

/// Decodes Hive's `%XX` escapes of a partition value; `None` for the NULL folder.
pub fn hive_value(raw: &str) -> Option<String> {
    if raw == HIVE_NULL {
        return None;
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = raw.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(h, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The `k=v` components of a relative path's folders.
fn partition_of(
    folders: &[&str],
    file: &str,
) -> Result<Vec<(String, Option<String>)>, PreviewError> {
    folders
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_owned(), hive_value(v)))
                .ok_or_else(|| {
                    PreviewError::Data(format!(
                        "{file}: folder {f:?} is not a Hive partition (key=value)"
                    ))
                })
        })
        .collect()
}

fn is_data_file(name: &str) -> bool {
    name.ends_with(".parquet") && !name.starts_with(['.', '_'])
}

fn local_parts(dir: &Path, table: &str) -> Result<Vec<Part>, PreviewError> {
    let root = if dir.join(table).is_dir() {
        dir.join(table)
    } else {
        dir.to_owned()
    };
    if !root.is_dir() {
        return Err(PreviewError::Data(format!(
            "{}: not a folder",
            root.display()
        )));
    }
    if root == dir
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        // No folder named after the table: DIR must be the product folder itself, whose
        // sub-folders are partitions (`k=v`). Other product folders beside a missing one are
        // a wrong table name, not a layout problem.
        let others: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.contains('=') && !n.starts_with(['_', '.']))
            .collect();
        if !others.is_empty() {
            let mut others = others;
            others.sort();
            return Err(PreviewError::Data(format!(
                "{}: no folder {table:?} here (it holds {}): check --table or --data",
                dir.display(),
                others.join(", ")
            )));
        }
    }
    let mut files = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| PreviewError::File {
            file: d.display().to_string(),
            reason: e.to_string(),
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| PreviewError::File {
                file: d.display().to_string(),
                reason: e.to_string(),
            })?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if is_data_file(&entry.file_name().to_string_lossy()) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&root).unwrap_or(&path);
            let comps: Vec<String> = rel
                .parent()
                .map(|p| {
                    p.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let folders: Vec<&str> = comps.iter().map(String::as_str).collect();
            let name = path.display().to_string();
            Ok(Part {
                partition: partition_of(&folders, &name)?,
                name,
                body: Body::File(path),
            })
        })
        .collect()
}

async fn s3_parts(s3: &S3, bucket: &str, prefix: &str) -> Result<Vec<Part>, PreviewError> {
    let mut parts = Vec::new();
    for key in s3.list_keys(bucket, prefix).await? {
        let rel = key.strip_prefix(prefix).unwrap_or(&key);
        let mut comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let Some(file) = comps.pop() else { continue };
        if !is_data_file(file) {
            continue;
        }
        let name = format!("s3://{bucket}/{key}");
        let partition = partition_of(&comps, &name)?;
        let bytes = s3.get(bucket, &key).await?;
        parts.push(Part {
            name,
            partition,
            body: Body::Bytes(bytes),
        });
    }
    Ok(parts)
}

/// The value of row `i` of `a` as Athena prints it (`None` for NULL).
pub fn cell(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(i).to_owned(),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i).to_owned(),
        DataType::Utf8View => a.as_string_view().value(i).to_owned(),
        DataType::Boolean => a.as_boolean().value(i).to_string(),
        DataType::Int8 => a.as_primitive::<Int8Type>().value(i).to_string(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::Float32 => a.as_primitive::<Float32Type>().value(i).to_string(),
        DataType::Float64 => a.as_primitive::<Float64Type>().value(i).to_string(),
        DataType::Decimal128(p, s) => {
            Decimal128Type::format_decimal(a.as_primitive::<Decimal128Type>().value(i), *p, *s)
        }
        DataType::Date32 => a
            .as_primitive::<Date32Type>()
            .value_as_date(i)
            .map_or_else(|| "(invalid date)".into(), |d| d.to_string()),
        DataType::Timestamp(TimeUnit::Millisecond, _) => a
            .as_primitive::<TimestampMillisecondType>()
            .value_as_datetime(i)
            .map_or_else(
                || "(invalid timestamp)".into(),
                |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            ),
        other => format!("({other} value)"),
    })
}

/// What scanning the files found.
struct Scan {
    schema: SchemaRef,
    rows_total: u64,
    rows_visible: u64,
    sample: Vec<Vec<Option<String>>>,
}

/// The table's schema: the body columns of every file, in order of first appearance (a
/// product that gained a column has older files without it: there it reads as NULL, as in
/// Athena), then the partition keys as strings. A column whose type differs between files is
/// an error, as Athena's HIVE_PARTITION_SCHEMA_MISMATCH is.
fn table_schema(parts: &[Part]) -> Result<(SchemaRef, Vec<String>), PreviewError> {
    let Some(first) = parts.first() else {
        return Err(PreviewError::Data("no Parquet files found".into()));
    };
    let keys: Vec<String> = first.partition.iter().map(|(k, _)| k.clone()).collect();
    let mut fields: Vec<Field> = Vec::new();
    let mut seen_in: Vec<String> = Vec::new();
    for part in parts {
        let body = footer_schema(part)?;
        for f in body.fields() {
            if keys.contains(f.name()) {
                return Err(PreviewError::Data(format!(
                    "{}: partition column {:?} is also stored in the file body",
                    part.name,
                    f.name()
                )));
            }
            match fields.iter().position(|g| g.name() == f.name()) {
                Some(i) if fields[i].data_type() != f.data_type() => {
                    return Err(PreviewError::Data(format!(
                        "{}: column {:?} is {} here but {} in {} (HIVE_PARTITION_SCHEMA_MISMATCH in Athena)",
                        part.name,
                        f.name(),
                        f.data_type(),
                        fields[i].data_type(),
                        seen_in[i]
                    )));
                }
                Some(_) => {}
                None => {
                    fields.push(
                        f.as_ref()
                            .clone()
                            .with_nullable(true)
                            .with_metadata(std::collections::HashMap::new()),
                    );
                    seen_in.push(part.name.clone());
                }
            }
        }
    }
    for k in &keys {
        fields.push(Field::new(k, DataType::Utf8, true));
    }
    Ok((Arc::new(Schema::new(fields)), keys))
}

/// A file's body schema, from its footer only.
fn footer_schema(part: &Part) -> Result<SchemaRef, PreviewError> {
    let fail = |e: &dyn std::fmt::Display| PreviewError::File {
        file: part.name.clone(),
        reason: e.to_string(),
    };
    Ok(match &part.body {
        Body::File(p) => {
            let f = std::fs::File::open(p).map_err(|e| fail(&e))?;
            ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| fail(&e))?
                .schema()
                .clone()
        }
        Body::Bytes(b) => ParquetRecordBatchReaderBuilder::try_new(b.clone())
            .map_err(|e| fail(&e))?
            .schema()
            .clone(),
    })
}

/// A reader of one file (read whole: a product's files are at most a few hundred MB each, and
/// only one is held at a time).
fn reader(part: &Part) -> Result<ParquetRecordBatchReaderBuilder<bytes::Bytes>, PreviewError> {
    let fail = |e: &dyn std::fmt::Display| PreviewError::File {
        file: part.name.clone(),
        reason: e.to_string(),
    };
    let bytes = match &part.body {
        Body::File(p) => bytes::Bytes::from(std::fs::read(p).map_err(|e| fail(&e))?),
        Body::Bytes(b) => b.clone(),
    };
    ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| fail(&e))
}

/// Reads every file, keeping counts and the first `limit` visible rows.
fn scan(
    parts: &[Part],
    schema: &SchemaRef,
    keys: &[String],
    evaluators: &[Evaluator],
    visible: &[usize],
    limit: usize,
) -> Result<Scan, PreviewError> {
    let mut out = Scan {
        schema: schema.clone(),
        rows_total: 0,
        rows_visible: 0,
        sample: Vec::new(),
    };
    let body_fields = schema.fields().len() - keys.len();
    for part in parts {
        let fail = |e: &dyn std::fmt::Display| PreviewError::File {
            file: part.name.clone(),
            reason: e.to_string(),
        };
        let got: Vec<&str> = part.partition.iter().map(|(k, _)| k.as_str()).collect();
        if got != keys {
            return Err(PreviewError::Data(format!(
                "{}: partition keys {got:?}, but the first file has {keys:?}: one table never mixes layouts",
                part.name
            )));
        }
        let builder = reader(part)?;
        let file_schema = builder.schema().clone();
        for batch in builder.build().map_err(|e| fail(&e))? {
            let batch = batch.map_err(|e| fail(&e))?;
            let n = batch.num_rows();
            // The table's body columns in its order; one this file lacks is NULL here.
            let mut columns: Vec<ArrayRef> = schema.fields()[..body_fields]
                .iter()
                .map(|f| match file_schema.index_of(f.name()) {
                    Ok(i) => Arc::clone(batch.column(i)),
                    Err(_) => arrow_array::new_null_array(f.data_type(), n),
                })
                .collect();
            for (_, v) in &part.partition {
                columns.push(Arc::new(StringArray::from(vec![v.as_deref(); n])));
            }
            let full = RecordBatch::try_new(schema.clone(), columns).map_err(|e| fail(&e))?;
            out.rows_total += n as u64;
            let seen = match evaluators {
                [] => full,
                _ => {
                    let mut mask: Option<arrow_array::BooleanArray> = None;
                    for ev in evaluators {
                        let m = ev.evaluate(&full).map_err(|e| fail(&e))?;
                        mask = Some(match mask {
                            None => m,
                            Some(prev) => {
                                arrow_arith::boolean::or_kleene(&prev, &m).map_err(|e| fail(&e))?
                            }
                        });
                    }
                    let mask = mask.map(crate::evaluate::only_true);
                    match mask {
                        Some(m) => arrow_select::filter::filter_record_batch(&full, &m)
                            .map_err(|e| fail(&e))?,
                        None => full,
                    }
                }
            };
            out.rows_visible += seen.num_rows() as u64;
            for row in 0..seen.num_rows() {
                if out.sample.len() >= limit {
                    break;
                }
                out.sample.push(
                    visible
                        .iter()
                        .map(|&c| cell(seen.column(c).as_ref(), row))
                        .collect(),
                );
            }
        }
    }
    Ok(out)
}

/// The registry's view of `table`: its domain and producer, for the policy's selectors.
fn managed_table(
    settings: &Settings,
    table: &TableRef,
    source: &DataSource,
    columns: std::collections::BTreeMap<String, String>,
) -> Result<ManagedTable, PreviewError> {
    let dbs = settings.databases();
    let Some(feeders) = dbs.get(&table.database) else {
        return Err(PreviewError::Table {
            table: table.to_string(),
            reason: format!(
                "database {:?} is not one the producer registry makes ({})",
                table.database,
                dbs.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    };
    let feeder = match source {
        DataSource::S3 { bucket, prefix } => feeders.iter().find(|(p, _)| {
            *bucket == p.bucket
                && (p.prefix.is_empty() || prefix.starts_with(&format!("{}/", p.prefix)))
        }),
        DataSource::Local(_) if feeders.len() == 1 => feeders.first(),
        DataSource::Local(_) => {
            return Err(PreviewError::Table {
                table: table.to_string(),
                reason: format!(
                    "database {:?} is fed by several producers ({}); preview the data from its s3:// location so the producer is known",
                    table.database,
                    feeders
                        .iter()
                        .map(|(p, _)| p.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    };
    let Some((producer, domain)) = feeder else {
        return Err(PreviewError::Table {
            table: table.to_string(),
            reason: "the data is not under a registered producer's bucket and prefix".into(),
        });
    };
    Ok(ManagedTable {
        table: table.clone(),
        domain: (*domain).to_owned(),
        producer: producer.id.clone(),
        columns,
    })
}

/// Parses `db.table`.
pub fn parse_table(text: &str) -> Result<TableRef, String> {
    match text.split_once('.') {
        Some((d, t)) if !d.is_empty() && !t.is_empty() && !t.contains('.') => Ok(TableRef {
            database: d.to_owned(),
            table: t.to_owned(),
        }),
        _ => Err(format!("{text:?} is not DATABASE.TABLE")),
    }
}

/// The preview of `table` for `principal` from `source` (`s3` for an `s3://` source).
pub async fn preview(
    settings: &Settings,
    policy: &Policy,
    s3: Option<&S3>,
    table: &TableRef,
    principal: &str,
    source: &DataSource,
    limit: usize,
) -> Result<Preview, PreviewError> {
    let parts = match source {
        DataSource::Local(dir) => {
            let (dir, name) = (dir.clone(), table.table.clone());
            tokio::task::spawn_blocking(move || local_parts(&dir, &name))
                .await
                .map_err(|e| PreviewError::Data(format!("listing task: {e}")))??
        }
        DataSource::S3 { bucket, prefix } => {
            let s3 = s3.ok_or_else(|| PreviewError::Data("no S3 client".into()))?;
            s3_parts(s3, bucket, prefix).await?
        }
    };
    let (schema, keys) = table_schema(&parts)?;
    let types = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), athena_type(f.data_type())))
        .collect();
    let managed = managed_table(settings, table, source, types)?;
    policy.lint_tables(std::slice::from_ref(&managed))?;
    let access = policy.access(&managed, principal)?;
    let refused = |reason: String| PreviewError::Refused {
        principal: principal.to_owned(),
        table: table.to_string(),
        reason,
    };
    let filters = match &access {
        Access::None => {
            return Err(refused(
                "the policy gives it no grant on this table (Lake Formation refuses the query and hides the table)".into(),
            ));
        }
        Access::NoSelect { permissions } => {
            return Err(refused(format!(
                "the policy gives it {} but not SELECT (the table is listed, queries are refused)",
                permissions.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        Access::Select { rows, .. } => rows.clone().unwrap_or_default(),
    };
    let partition_keys: BTreeSet<String> = keys.iter().cloned().collect();
    let evaluators = filters
        .iter()
        .map(|f| {
            Evaluator::new(f, &schema, &partition_keys).map_err(|source| PreviewError::Filter {
                filter: f.text.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let visible_names = access.visible(&names);
    let visible: Vec<usize> = visible_names
        .iter()
        .filter_map(|n| schema.index_of(n).ok())
        .collect();
    let hidden_columns = names
        .iter()
        .filter(|n| !visible_names.contains(&n.as_str()))
        .cloned()
        .collect();
    let files = parts.len();
    let schema2 = schema.clone();
    let visible2 = visible.clone();
    let found = tokio::task::spawn_blocking(move || {
        scan(&parts, &schema2, &keys, &evaluators, &visible2, limit)
    })
    .await
    .map_err(|e| PreviewError::Data(format!("scanning task: {e}")))??;
    Ok(Preview {
        table: table.to_string(),
        principal: principal.to_owned(),
        access: access.to_string(),
        row_filter: access.rows_sql(),
        columns: visible
            .iter()
            .map(|&i| {
                let f = found.schema.field(i);
                ColumnInfo {
                    name: f.name().clone(),
                    ty: athena_type(f.data_type()),
                }
            })
            .collect(),
        hidden_columns,
        files,
        rows_total: found.rows_total,
        rows_visible: found.rows_visible,
        sample: found.sample,
    })
}

impl Preview {
    /// The terminal form: access, columns, counts, then the sample as a table.
    pub fn render(&self) -> String {
        let mut out = format!(
            "table {} as {}\naccess: {}\ncolumns ({}): {}\nhidden columns ({}): {}\nrows: {} of {} visible ({} files)\n",
            self.table,
            self.principal,
            self.access,
            self.columns.len(),
            self.columns
                .iter()
                .map(|c| format!("{} {}", c.name, c.ty))
                .collect::<Vec<_>>()
                .join(", "),
            self.hidden_columns.len(),
            if self.hidden_columns.is_empty() {
                "none".to_owned()
            } else {
                self.hidden_columns.join(", ")
            },
            self.rows_visible,
            self.rows_total,
            self.files,
        );
        if self.sample.is_empty() {
            return out;
        }
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|c| c.name.chars().count())
            .collect();
        let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "NULL".into());
        for row in &self.sample {
            for (w, v) in widths.iter_mut().zip(row) {
                *w = (*w).max(shown(v).chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join(" | ")
                .trim_end()
                .to_owned()
        };
        out.push_str(&format!("first {} rows:\n", self.sample.len()));
        out.push_str(&line(self.columns.iter().map(|c| c.name.clone()).collect()));
        out.push('\n');
        for row in &self.sample {
            out.push_str(&line(row.iter().map(shown).collect()));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, columns: Vec<(&str, ArrayRef)>) {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            schema.clone(),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(path).unwrap(),
            schema,
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn a_column_added_later_reads_as_null_in_older_files_and_a_type_change_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("stays");
        let region = |v: &[&str]| -> ArrayRef { Arc::new(StringArray::from(v.to_vec())) };
        write(
            &t.join("year=2024/part-a-0.parquet"),
            vec![("region_code", region(&["76", "11"]))],
        );
        write(
            &t.join("year=2025/part-b-0.parquet"),
            vec![("region_code", region(&["76"])), ("ward", region(&["A"]))],
        );
        let parts = local_parts(d.path(), "stays").unwrap();
        let (schema, keys) = table_schema(&parts).unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["region_code", "ward", "year"]);
        let filter = crate::lint::RowFilter::parse("ward IS NULL").unwrap();
        let keyset: BTreeSet<String> = keys.iter().cloned().collect();
        let ev = Evaluator::new(&filter, &schema, &keyset).unwrap();
        let found = scan(&parts, &schema, &keys, &[ev], &[0, 1, 2], 10).unwrap();
        assert_eq!(
            (found.rows_total, found.rows_visible),
            (3, 2),
            "the 2024 rows have no ward"
        );

        write(
            &t.join("year=2026/part-c-0.parquet"),
            vec![(
                "region_code",
                Arc::new(arrow_array::Int32Array::from(vec![76])) as ArrayRef,
            )],
        );
        let e = match local_parts(d.path(), "stais") {
            Ok(_) => panic!("a wrong table name was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("no folder \"stais\"") && e.contains("stays"),
            "{e}"
        );
        let parts = local_parts(d.path(), "stays").unwrap();
        let e = table_schema(&parts).unwrap_err().to_string();
        assert!(
            e.contains("region_code") && e.contains("Int32") && e.contains("Utf8"),
            "{e}"
        );
    }

    #[test]
    fn hive_values_and_sources() {
        assert_eq!(hive_value("2024"), Some("2024".into()));
        assert_eq!(hive_value("a%2Fb%3D"), Some("a/b=".into()));
        assert_eq!(hive_value("100%"), Some("100%".into()));
        assert_eq!(hive_value(HIVE_NULL), None);
        assert_eq!(
            DataSource::parse("s3://b/products/hospital_stays").unwrap(),
            DataSource::S3 {
                bucket: "b".into(),
                prefix: "products/hospital_stays/".into()
            }
        );
        assert_eq!(
            DataSource::parse("out").unwrap(),
            DataSource::Local(PathBuf::from("out"))
        );
        assert!(DataSource::parse("s3:///x").is_err());
        assert_eq!(
            parse_table("db.t").unwrap(),
            TableRef {
                database: "db".into(),
                table: "t".into()
            }
        );
        assert!(parse_table("db").is_err() && parse_table("a.b.c").is_err());
    }
}
