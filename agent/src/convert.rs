//! The conversion pipeline: one CSV export → typed, pseudonymised, Hive-partitioned Parquet.
//!
//! Streams the decoded source through the CSV tokenizer, parses every value by the contract,
//! routes rows to partition buffers under a global memory budget (large buffers become row groups
//! directly, small ones are spilled to Arrow IPC files and merged at the end so row groups stay
//! large), then writes the files into a staging folder and moves them into place only when the
//! whole file succeeded. Owns the error policy (`reject_file`, `quarantine_rows`), the error
//! report and the batch manifest. It does not upload or announce.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::SchemaRef;
use csv::ByteRecord;
use lakemesh_shared::names;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::columns::{BatchBuilder, body_schema};
use crate::contract::{ColumnType, Contract, OnError, Pii, Source, Transform};
use crate::datefmt::{self, DateFormat};
use crate::decode::{self, DecodeError};
use crate::parse::{self, Numeric};
use crate::pii::{self, PseudonymKey};
use crate::writer::{PartitionWriter, WrittenFile, writer_properties};

/// How many located errors a report lists (the counts cover all of them).
pub const MAX_REPORTED_ERRORS: usize = 100;
/// Partition buffers at least this many rows go straight to Parquet instead of the spill.
const MIN_ROW_GROUP_ROWS: usize = 65_536;

/// Where and how to convert.
pub struct ConvertOptions {
    /// Output root: files land in `{out_dir}/{product}/{k=v}/part-{batch}-{n}.parquet`.
    pub out_dir: PathBuf,
    /// Where `NAME.error.json` and `NAME.rejects.csv` go.
    pub report_dir: PathBuf,
    /// Needed when a column has `pii = "hmac"`.
    pub key: Option<PseudonymKey>,
    /// Threads for the final encoding phase (partitions are encoded in parallel).
    pub threads: usize,
    /// Bytes of parsed values held in memory before buffers are written or spilled.
    pub memory_budget_bytes: usize,
    /// Called with raw bytes read so far, from the converting thread.
    pub progress: Option<Box<dyn Fn(u64) + Send>>,
}

impl ConvertOptions {
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        let out_dir = out_dir.into();
        Self {
            report_dir: out_dir.clone(),
            out_dir,
            key: None,
            threads: 1,
            memory_budget_bytes: 64 * 1024 * 1024,
            progress: None,
        }
    }
}

/// One Parquet object of a batch.
#[derive(Debug, Clone, Serialize)]
pub struct OutputObject {
    /// Path relative to the output root (the S3 key below `{prefix}/`).
    pub key: String,
    pub bytes: u64,
    pub rows: u64,
    pub sha256: String,
    pub partition: Vec<(String, String)>,
}

/// What a successful conversion produced.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub product: String,
    pub source: PathBuf,
    pub source_bytes: u64,
    pub source_sha256: String,
    pub batch_id: String,
    pub encoding: &'static str,
    pub delimiter: u8,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_rejected: u64,
    pub objects: Vec<OutputObject>,
    pub manifest: PathBuf,
    pub rejects_file: Option<PathBuf>,
    pub seconds: f64,
}

impl ConvertReport {
    pub fn output_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.bytes).sum()
    }
}

/// One located problem.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowError {
    /// 1-based physical line where the record starts.
    pub line: u64,
    /// Contract column name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Header as exported (or `#N` for headerless files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_header: Option<String>,
    /// 1-based field position in the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(c) = &self.column {
            write!(f, ", column {c}")?;
            if let Some(h) = &self.source_header
                && h != c
            {
                write!(f, " ({h:?})")?;
            }
        }
        if let Some(v) = &self.value {
            write!(f, ", value {v:?}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// A rejected file: nothing was written.
#[derive(Debug)]
pub struct Rejection {
    pub file: PathBuf,
    pub report: PathBuf,
    pub first: RowError,
    pub errors_total: u64,
    pub rows_read: u64,
    pub rows_rejected: u64,
    pub why: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{}: rejected ({}): {} error(s), first at {}; report: {}", .0.file.display(), .0.why, .0.errors_total, .0.first, .0.report.display())]
    Rejected(Box<Rejection>),
    #[error(
        "product {product:?} pseudonymises column {column:?} (pii = \"hmac\") but no pseudonym key was given"
    )]
    KeyMissing { product: String, column: String },
    #[error("product {product:?} has no columns (discovery mode): every row of {} was read and a contract proposed in {}; review it and pin its columns", .file.display(), .proposal.display())]
    Discovery {
        product: String,
        file: PathBuf,
        proposal: PathBuf,
    },
    #[error(
        "product {product:?} has no columns (discovery mode) and no contract could be inferred: {source}"
    )]
    DiscoveryFailed {
        product: String,
        #[source]
        source: Box<crate::infer::InferError>,
    },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {message}")]
    Output { path: PathBuf, message: String },
}

impl ConvertError {
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Rejected(_))
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ConvertError + '_ {
    move |source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How one declared column is read.
struct FieldPlan {
    /// Index into the record.
    src: usize,
    /// Contract column index.
    col: usize,
    name: String,
    header: String,
    ty: ColumnType,
    formats: Vec<DateFormat>,
    nulls: Vec<Vec<u8>>,
    only_empty_null: bool,
    true_values: Vec<String>,
    false_values: Vec<String>,
    pii: Pii,
    /// Position in the body batch, if written.
    body: Option<usize>,
}

#[derive(Clone, Copy)]
enum Val {
    Null,
    Int(i64),
    F64(f64),
    Dec(i128),
    Bool(bool),
    /// A string field, by record index.
    Str(usize),
}

/// One partition's state during phase 1.
struct Partition {
    dir: String,
    values: Vec<(String, String)>,
    buf: BatchBuilder,
    spill: Option<(StreamWriter<BufWriter<File>>, PathBuf)>,
    writer: Option<PartitionWriter>,
}

/// Everything the run needs to write.
struct Sink<'a> {
    schema: SchemaRef,
    props: WriterProperties,
    contract: &'a Contract,
    staging: PathBuf,
    budget: usize,
    held: usize,
    spill_seq: u32,
}

impl Sink<'_> {
    fn writer_for(&self, part: &Partition) -> PartitionWriter {
        let mut dir = self.staging.join("data");
        if !part.dir.is_empty() {
            dir.push(&part.dir);
        }
        PartitionWriter::new(
            dir,
            self.schema.clone(),
            self.props.clone(),
            &self.contract.output,
        )
    }

    /// Writes or spills the largest buffer until the budget holds.
    fn relieve(&mut self, parts: &mut [Partition]) -> Result<(), ConvertError> {
        while self.held > self.budget {
            let Some((i, _)) = parts.iter().enumerate().max_by_key(|(_, p)| p.buf.bytes) else {
                return Ok(());
            };
            self.flush(&mut parts[i], false)?;
        }
        Ok(())
    }

    /// Moves a partition's buffer out of memory: to Parquet when large enough (or already
    /// streaming), else to its spill file.
    fn flush(&mut self, part: &mut Partition, to_parquet: bool) -> Result<(), ConvertError> {
        if part.buf.rows == 0 {
            return Ok(());
        }
        self.held -= part.buf.bytes;
        let batch = part
            .buf
            .finish(&self.schema)
            .map_err(|e| ConvertError::Output {
                path: self.staging.clone(),
                message: e.to_string(),
            })?;
        if to_parquet || part.writer.is_some() || batch.num_rows() >= MIN_ROW_GROUP_ROWS {
            if part.writer.is_none() {
                part.writer = Some(self.writer_for(part));
            }
            let Some(w) = part.writer.as_mut() else {
                unreachable!("set above")
            };
            let dir = w.dir().to_path_buf();
            replay_spill(part.spill.take(), w)?;
            w.write(&batch).map_err(io_at(&dir))?;
            return Ok(());
        }
        if part.spill.is_none() {
            let path = self
                .staging
                .join("spill")
                .join(format!("{}.arrows", self.spill_seq));
            self.spill_seq += 1;
            std::fs::create_dir_all(self.staging.join("spill")).map_err(io_at(&path))?;
            let f = File::create(&path).map_err(io_at(&path))?;
            let w = StreamWriter::try_new(BufWriter::with_capacity(64 * 1024, f), &self.schema)
                .map_err(|e| ConvertError::Output {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            part.spill = Some((w, path));
        }
        let Some((w, path)) = part.spill.as_mut() else {
            unreachable!("set above")
        };
        w.write(&batch).map_err(|e| ConvertError::Output {
            path: path.clone(),
            message: e.to_string(),
        })
    }
}

/// Writes the spilled batches of a partition into its Parquet writer and removes the spill file.
fn replay_spill(
    spill: Option<(StreamWriter<BufWriter<File>>, PathBuf)>,
    w: &mut PartitionWriter,
) -> Result<(), ConvertError> {
    let Some((mut sw, path)) = spill else {
        return Ok(());
    };
    let out = |e: arrow_schema::ArrowError| ConvertError::Output {
        path: path.clone(),
        message: e.to_string(),
    };
    sw.finish().map_err(out)?;
    let mut inner = sw.into_inner().map_err(out)?;
    inner.flush().map_err(io_at(&path))?;
    drop(inner);
    let f = File::open(&path).map_err(io_at(&path))?;
    let reader =
        StreamReader::try_new(BufReader::with_capacity(256 * 1024, f), None).map_err(out)?;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(out)?;
        w.write(&batch).map_err(io_at(&path))?;
    }
    std::fs::remove_file(&path).map_err(io_at(&path))?;
    Ok(())
}

/// Collects located errors (the first [`MAX_REPORTED_ERRORS`]) and counts them all.
struct Errors {
    list: Vec<RowError>,
    total: u64,
}

impl Errors {
    fn push(&mut self, e: RowError) {
        self.total += 1;
        if self.list.len() < MAX_REPORTED_ERRORS {
            self.list.push(e);
        }
    }
}

/// The record's fields joined by the delimiter, shortened like a value.
fn show_record(r: &ByteRecord, delimiter: u8) -> String {
    let mut joined = Vec::with_capacity(r.as_slice().len() + r.len());
    for (i, f) in r.iter().enumerate() {
        if i > 0 {
            joined.push(delimiter);
        }
        joined.extend_from_slice(f);
        if joined.len() > 400 {
            break;
        }
    }
    show_value(&joined)
}

fn show_value(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    if s.chars().count() > 200 {
        let mut t: String = s.chars().take(200).collect();
        t.push('…');
        t
    } else {
        s.into_owned()
    }
}

/// Converts one export.
pub fn convert_file(
    contract: &Contract,
    input: &Path,
    opts: &ConvertOptions,
) -> Result<ConvertReport, ConvertError> {
    let started = Instant::now();
    if contract.is_discovery() {
        return Err(discover(contract, input, opts));
    }
    if let Some(c) = contract.columns.iter().find(|c| c.pii == Pii::Hmac)
        && opts.key.is_none()
    {
        return Err(ConvertError::KeyMissing {
            product: contract.name.clone(),
            column: c.name.clone(),
        });
    }
    let file_name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "input".into());
    let mut decoded = decode::open(input, &contract.csv)?;

    std::fs::create_dir_all(&opts.out_dir).map_err(io_at(&opts.out_dir))?;
    let staging = opts.out_dir.join("_lakemesh").join("staging").join(format!(
        "{}-{}-{}",
        contract.name,
        std::process::id(),
        started.elapsed().as_nanos()
            ^ (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()))
    ));
    std::fs::create_dir_all(&staging).map_err(io_at(&staging))?;
    let result = run(
        contract,
        input,
        &file_name,
        opts,
        &mut decoded,
        &staging,
        started,
    );
    let _ = std::fs::remove_dir_all(&staging);
    result
}

#[allow(clippy::too_many_arguments)]
fn run(
    contract: &Contract,
    input: &Path,
    file_name: &str,
    opts: &ConvertOptions,
    decoded: &mut decode::Decoded,
    staging: &Path,
    started: Instant,
) -> Result<ConvertReport, ConvertError> {
    let csv_cfg = &contract.csv;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(decoded.delimiter)
        .quote(csv_cfg.quote)
        .double_quote(true)
        .buffer_capacity(1 << 20)
        .from_reader(&mut decoded.reader);
    let line_offset = decoded.lines_skipped;
    let mut errors = Errors {
        list: Vec::new(),
        total: 0,
    };
    let reject =
        |errors: Errors, why: String, rows_read: u64, rows_rejected: u64| -> ConvertError {
            reject_file(
                contract,
                input,
                file_name,
                opts,
                errors,
                why,
                rows_read,
                rows_rejected,
            )
        };

    // Header (or the first record of a headerless file).
    let mut record = ByteRecord::new();
    let mut first = ByteRecord::new();
    let has_first = loop {
        match rdr.read_byte_record(&mut first) {
            Ok(false) => break false,
            Ok(true) if is_blank(&first) => continue,
            Ok(true) => break true,
            Err(e) => {
                errors.push(csv_error(&e, line_offset));
                return Err(reject(errors, "unreadable".into(), 0, 0));
            }
        }
    };
    if !has_first {
        errors.push(RowError {
            line: line_offset + 1,
            column: None,
            source_header: None,
            field: None,
            value: None,
            reason: if csv_cfg.header {
                "the file has no header line (it is empty)".into()
            } else {
                "the file is empty".into()
            },
        });
        return Err(reject(errors, "empty".into(), 0, 0));
    }
    let first_line = first.position().map_or(1, |p| p.line()) + line_offset;
    let width = first.len();
    let headers: Vec<String> = if csv_cfg.header {
        let mut hs = Vec::with_capacity(width);
        for (i, f) in first.iter().enumerate() {
            match std::str::from_utf8(f) {
                Ok(s) => hs.push(s.trim().to_string()),
                Err(_) => {
                    errors.push(RowError {
                        line: first_line,
                        column: None,
                        source_header: None,
                        field: Some(i + 1),
                        value: Some(show_value(f)),
                        reason: "header is not valid UTF-8; set csv.encoding (e.g. windows-1252)"
                            .into(),
                    });
                    return Err(reject(errors, "bad header".into(), 0, 0));
                }
            }
        }
        hs
    } else {
        (0..width).map(|i| format!("#{i}")).collect()
    };

    let plans = match plan_fields(contract, &headers, first_line) {
        Ok(p) => p,
        Err(list) => {
            for e in list {
                errors.push(e);
            }
            return Err(reject(
                errors,
                "header does not match the contract".into(),
                0,
                0,
            ));
        }
    };

    // Body schema and writer settings.
    let body_cols: Vec<(String, ColumnType, String)> = contract
        .body_columns()
        .map(|(i, c)| {
            let header = plans
                .iter()
                .find(|p| p.col == i)
                .map_or_else(|| c.name.clone(), |p| p.header.clone());
            (c.name.clone(), c.output_type(), header)
        })
        .collect();
    let body_types: Vec<ColumnType> = body_cols.iter().map(|c| c.1).collect();
    let schema = body_schema(&body_cols);
    let metadata = vec![
        KeyValue::new("lakemesh.product".to_string(), contract.name.clone()),
        KeyValue::new("lakemesh.domain".to_string(), contract.domain.clone()),
        KeyValue::new("lakemesh.source_file".to_string(), file_name.to_string()),
    ];
    let no_dict: Vec<String> = Vec::new();
    let props = writer_properties(&contract.output, metadata, &no_dict).map_err(|message| {
        ConvertError::Output {
            path: staging.to_path_buf(),
            message,
        }
    })?;
    let mut sink = Sink {
        schema: schema.clone(),
        props,
        contract,
        staging: staging.to_path_buf(),
        budget: opts.memory_budget_bytes,
        held: 0,
        spill_seq: 0,
    };

    let quarantine = contract.on_error == OnError::QuarantineRows;
    let mut rejects: Option<(csv::Writer<File>, PathBuf)> = None;
    let numeric = Numeric {
        decimal: csv_cfg.decimal,
        thousands: csv_cfg.thousands,
    };
    let mut parts: Vec<Partition> = Vec::new();
    let mut part_index: FxHashMap<String, usize> = FxHashMap::default();
    let mut key_buf = String::with_capacity(64);
    let mut vals: Vec<Val> = Vec::with_capacity(plans.len());
    let mut scratch = Vec::new();
    let mut text_buf = String::with_capacity(128);
    let mut rows_read: u64 = 0;
    let mut rows_written: u64 = 0;
    let mut rows_rejected: u64 = 0;
    let mut doomed = false; // reject_file after the first error: keep counting, stop writing
    let mut footer: VecDeque<ByteRecord> = VecDeque::new();
    let footer_n = csv_cfg.skip_footer_rows as usize;
    let mut pending_first = if csv_cfg.header {
        None
    } else {
        Some(first.clone())
    };
    let mut last_progress = 0u64;

    loop {
        // Next record: the headerless first record, then the stream, delayed by the footer.
        let got = if let Some(f) = pending_first.take() {
            record = f;
            true
        } else {
            match rdr.read_byte_record(&mut record) {
                Ok(g) => g,
                Err(e) => {
                    errors.push(csv_error(&e, line_offset));
                    return Err(reject(
                        errors,
                        "unreadable".into(),
                        rows_read,
                        rows_rejected,
                    ));
                }
            }
        };
        if !got {
            break;
        }
        if footer_n > 0 {
            // Footer lines are counted as exported, blank-looking ones included.
            footer.push_back(record.clone());
            if footer.len() <= footer_n {
                continue;
            }
            let Some(r) = footer.pop_front() else {
                unreachable!("len > n >= 1")
            };
            record = r;
        }
        if is_blank(&record) {
            continue;
        }
        rows_read += 1;
        if let Some(p) = &opts.progress
            && rows_read & 0x3fff == 0
        {
            let b = decoded.bytes_read.load(Ordering::Relaxed);
            if b != last_progress {
                p(b);
                last_progress = b;
            }
        }
        let line = record.position().map_or(0, |p| p.line()) + line_offset;

        // Shape.
        let before = errors.total;
        if record.len() != width {
            let hint = if record.len() < width {
                " (a record split by an unquoted line break, or missing fields)"
            } else {
                " (an unquoted delimiter inside a value, or extra fields)"
            };
            errors.push(RowError {
                line,
                column: None,
                source_header: None,
                field: None,
                value: Some(show_record(&record, decoded.delimiter)),
                reason: format!("expected {width} fields, found {}{hint}", record.len()),
            });
        } else {
            // Values.
            vals.clear();
            for p in &plans {
                let raw = &record[p.src];
                match parse_value(p, raw, numeric, &mut scratch) {
                    Ok(v) => vals.push(v),
                    Err(reason) => {
                        vals.push(Val::Null);
                        errors.push(RowError {
                            line,
                            column: Some(p.name.clone()),
                            source_header: Some(p.header.clone()),
                            field: Some(p.src + 1),
                            value: Some(show_value(raw)),
                            reason,
                        });
                    }
                }
            }
        }
        if errors.total > before {
            rows_rejected += 1;
            if quarantine {
                let reason = errors
                    .list
                    .last()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                write_reject(
                    &mut rejects,
                    staging,
                    &headers,
                    csv_cfg.header,
                    &record,
                    line,
                    &reason,
                )?;
            } else {
                doomed = true;
            }
            continue;
        }
        if doomed {
            continue;
        }

        // Partition.
        let pi = if contract.partition_by.is_empty() {
            if parts.is_empty() {
                parts.push(Partition {
                    dir: String::new(),
                    values: Vec::new(),
                    buf: BatchBuilder::new(&body_types),
                    spill: None,
                    writer: None,
                });
            }
            0
        } else {
            key_buf.clear();
            for (k, spec) in contract.partition_by.iter().enumerate() {
                if k > 0 {
                    key_buf.push('/');
                }
                key_buf.push_str(&spec.name);
                key_buf.push('=');
                let plan = plans
                    .iter()
                    .position(|p| p.col == spec.column)
                    .unwrap_or_else(|| unreachable!("partition columns are planned"));
                push_partition_value(
                    &mut key_buf,
                    spec.transform,
                    plans[plan].ty,
                    vals[plan],
                    &record,
                );
            }
            match part_index.get(key_buf.as_str()) {
                Some(&i) => i,
                None => {
                    let values = key_buf
                        .split('/')
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                            (k.to_string(), v.to_string())
                        })
                        .collect();
                    parts.push(Partition {
                        dir: key_buf.clone(),
                        values,
                        buf: BatchBuilder::new(&body_types),
                        spill: None,
                        writer: None,
                    });
                    part_index.insert(key_buf.clone(), parts.len() - 1);
                    parts.len() - 1
                }
            }
        };

        // Append.
        let part = &mut parts[pi];
        let mut added = 0usize;
        for (p, v) in plans.iter().zip(vals.iter()) {
            let Some(bi) = p.body else { continue };
            let col = &mut part.buf.cols[bi];
            match *v {
                Val::Null => {
                    col.append_null();
                    added += 1;
                }
                Val::Int(x) => {
                    if p.pii == Pii::Year {
                        let days = if p.ty == ColumnType::Timestamp {
                            x.div_euclid(86_400_000)
                        } else {
                            x
                        };
                        col.append_i64(datefmt::civil_from_days(days as i32).0 as i64);
                    } else {
                        col.append_i64(x);
                    }
                    added += 8;
                }
                Val::F64(x) => {
                    col.append_f64(x);
                    added += 8;
                }
                Val::Dec(x) => {
                    col.append_i128(x);
                    added += 16;
                }
                Val::Bool(x) => {
                    col.append_bool(x);
                    added += 1;
                }
                Val::Str(i) => {
                    // Checked valid UTF-8 in parse_value.
                    let s = std::str::from_utf8(&record[i])
                        .unwrap_or_else(|_| unreachable!("validated"));
                    let s = if contract.csv.trim_strings {
                        s.trim()
                    } else {
                        s
                    };
                    match p.pii {
                        Pii::Hmac => {
                            text_buf.clear();
                            if let Some(k) = &opts.key {
                                k.pseudonym_into(s.as_bytes(), &mut text_buf);
                            }
                            col.append_str(&text_buf);
                            added += text_buf.len() + 4;
                        }
                        Pii::Truncate(n) => {
                            let t = pii::truncate_chars(s, n);
                            col.append_str(t);
                            added += t.len() + 4;
                        }
                        _ => {
                            col.append_str(s);
                            added += s.len() + 4;
                        }
                    }
                }
            }
        }
        part.buf.rows += 1;
        part.buf.bytes += added;
        sink.held += added;
        rows_written += 1;
        if sink.held > sink.budget {
            sink.relieve(&mut parts)?;
        }
    }
    if let Some(p) = &opts.progress {
        p(decoded.bytes_read.load(Ordering::Relaxed));
    }
    drop(rdr);

    // Policy.
    if errors.total > 0 && !quarantine {
        return Err(reject(
            errors,
            "on_error = reject_file".into(),
            rows_read,
            rows_rejected,
        ));
    }
    if quarantine
        && rows_read > 0
        && (rows_rejected as f64 / rows_read as f64) > contract.max_rejected_ratio
    {
        let why = format!(
            "{rows_rejected} of {rows_read} rows rejected, above max_rejected_ratio = {}",
            contract.max_rejected_ratio
        );
        return Err(reject(errors, why, rows_read, rows_rejected));
    }
    let source_sha256 = decoded.hash.hex().ok_or_else(|| ConvertError::Output {
        path: input.to_path_buf(),
        message: "source was not read to its end".into(),
    })?;
    let source_bytes = decoded.bytes_read.load(Ordering::Relaxed);
    let batch_id = batch_id_of(&source_sha256);

    // Phase 2: every partition's remaining rows to Parquet.
    if parts.is_empty() && contract.partition_by.is_empty() {
        parts.push(Partition {
            dir: String::new(),
            values: Vec::new(),
            buf: BatchBuilder::new(&body_types),
            spill: None,
            writer: None,
        });
    }
    parts.sort_by(|a, b| a.dir.cmp(&b.dir));
    let phase1 = started.elapsed().as_secs_f64();
    log::debug!(
        "phase 1 (parse, route, spill): {phase1:.2} s, {} partitions",
        parts.len()
    );
    let ensure_one = contract.partition_by.is_empty();
    let written = finish_partitions(&mut sink, parts, opts.threads.max(1), ensure_one)?;

    log::debug!(
        "phase 2 (encode): {:.2} s",
        started.elapsed().as_secs_f64() - phase1
    );

    // Move into place.
    let product_dir = opts.out_dir.join(&contract.name);
    remove_previous(&product_dir, &batch_id).map_err(io_at(&product_dir))?;
    let mut objects = Vec::new();
    for (dir, values, files) in written {
        for f in files {
            let mut key = contract.name.clone();
            if !dir.is_empty() {
                key.push('/');
                key.push_str(&dir);
            }
            key.push_str(&format!("/part-{batch_id}-{}.parquet", f.seq));
            let dest = opts.out_dir.join(&key);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io_at(parent))?;
            }
            std::fs::rename(&f.path, &dest).map_err(io_at(&dest))?;
            objects.push(OutputObject {
                key,
                bytes: f.bytes,
                rows: f.rows,
                sha256: f.sha256,
                partition: values.clone(),
            });
        }
    }
    let rejects_file = match rejects {
        Some((mut w, path)) => {
            w.flush().map_err(io_at(&path))?;
            drop(w);
            let dest = opts.report_dir.join(format!("{file_name}.rejects.csv"));
            std::fs::create_dir_all(&opts.report_dir).map_err(io_at(&opts.report_dir))?;
            std::fs::copy(&path, &dest).map_err(io_at(&dest))?;
            Some(dest)
        }
        None => None,
    };

    let manifest = write_manifest(
        contract,
        &plans,
        &opts.out_dir,
        &batch_id,
        file_name,
        source_bytes,
        &source_sha256,
        rows_written,
        &objects,
    )?;
    Ok(ConvertReport {
        product: contract.name.clone(),
        source: input.to_path_buf(),
        source_bytes,
        source_sha256,
        batch_id,
        encoding: decoded.encoding.as_str(),
        delimiter: decoded.delimiter,
        rows_read,
        rows_written,
        rows_rejected,
        objects,
        manifest,
        rejects_file,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Discovery mode: nothing is converted; a contract is inferred from every row and written
/// beside the reports for a person to review and pin.
fn discover(contract: &Contract, input: &Path, opts: &ConvertOptions) -> ConvertError {
    let inferred = match crate::infer::infer_file(input, &contract.csv) {
        Ok(i) => i,
        Err(source) => {
            return ConvertError::DiscoveryFailed {
                product: contract.name.clone(),
                source: Box::new(source),
            };
        }
    };
    let file_name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text = crate::infer::render_contract(
        &inferred,
        &contract.name,
        &contract.domain,
        &contract.csv,
        &file_name,
    );
    let proposal = opts
        .report_dir
        .join(format!("{}.contract.toml", contract.name));
    if let Err(source) = std::fs::create_dir_all(&opts.report_dir)
        .and_then(|()| write_atomic(&proposal, text.as_bytes()))
    {
        return ConvertError::Io {
            path: proposal,
            source,
        };
    }
    ConvertError::Discovery {
        product: contract.name.clone(),
        file: input.to_path_buf(),
        proposal,
    }
}

/// The batch id of a source: the first 16 hex digits of its SHA-256.
pub fn batch_id_of(sha256_hex: &str) -> String {
    sha256_hex[..16].to_string()
}

/// A finished partition: folder, key values, files.
type Finished = (String, Vec<(String, String)>, Vec<WrittenFile>);
type Written = Vec<Finished>;

fn finish_partitions(
    sink: &mut Sink<'_>,
    parts: Vec<Partition>,
    threads: usize,
    ensure_one: bool,
) -> Result<Written, ConvertError> {
    let finish_one = |sink: &Sink<'_>, mut part: Partition| -> Result<Finished, ConvertError> {
        let mut w = part.writer.take().unwrap_or_else(|| sink.writer_for(&part));
        let dir = w.dir().to_path_buf();
        replay_spill(part.spill.take(), &mut w)?;
        if part.buf.rows > 0 {
            let batch = part
                .buf
                .finish(&sink.schema)
                .map_err(|e| ConvertError::Output {
                    path: dir.clone(),
                    message: e.to_string(),
                })?;
            part.buf.release();
            w.write(&batch).map_err(io_at(&dir))?;
        }
        let files = w.finish(ensure_one).map_err(io_at(&dir))?;
        Ok((part.dir, part.values, files))
    };
    if threads <= 1 || parts.len() <= 1 {
        return parts.into_iter().map(|p| finish_one(sink, p)).collect();
    }
    let n = parts.len();
    let queue = std::sync::Mutex::new(parts.into_iter().enumerate().collect::<VecDeque<_>>());
    let results = std::sync::Mutex::new(Vec::with_capacity(n));
    let sink_ref: &Sink<'_> = sink;
    std::thread::scope(|s| {
        for _ in 0..threads.min(n) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                    let Some((i, p)) = next else { break };
                    let r = finish_one(sink_ref, p);
                    let failed = r.is_err();
                    if let Ok(mut res) = results.lock() {
                        res.push((i, r));
                    }
                    if failed {
                        break;
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Removes files an earlier conversion of the same source left (their count may differ).
fn remove_previous(product_dir: &Path, batch_id: &str) -> io::Result<()> {
    if !product_dir.exists() {
        return Ok(());
    }
    let prefix = format!("part-{batch_id}-");
    let mut stack = vec![product_dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(&prefix) {
                std::fs::remove_file(e.path())?;
            }
        }
    }
    Ok(())
}

fn is_blank(r: &ByteRecord) -> bool {
    r.is_empty() || (r.len() == 1 && parse::trim(&r[0]).iter().all(|&c| c == b'\r'))
}

fn csv_error(e: &csv::Error, line_offset: u64) -> RowError {
    let line = e.position().map_or(0, |p| p.line()) + line_offset;
    let reason = match e.kind() {
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    };
    RowError {
        line,
        column: None,
        source_header: None,
        field: None,
        value: None,
        reason,
    }
}

/// Maps contract columns to record positions; lists every mismatch.
fn plan_fields(
    contract: &Contract,
    headers: &[String],
    line: u64,
) -> Result<Vec<FieldPlan>, Vec<RowError>> {
    let mut errs = Vec::new();
    let err = |reason: String| RowError {
        line,
        column: None,
        source_header: None,
        field: None,
        value: None,
        reason,
    };
    let normalised: Vec<Option<String>> =
        headers.iter().map(|h| names::normalise_header(h)).collect();
    let mut used = vec![false; headers.len()];
    let mut plans = Vec::new();
    let body: Vec<usize> = contract.body_columns().map(|(i, _)| i).collect();
    for (ci, c) in contract.columns.iter().enumerate() {
        let found: Vec<usize> = match &c.source {
            Source::Index(n) => {
                if *n < headers.len() {
                    vec![*n]
                } else {
                    errs.push(RowError {
                        column: Some(c.name.clone()),
                        ..err(format!(
                            "index = {n} but the file has {} fields",
                            headers.len()
                        ))
                    });
                    continue;
                }
            }
            Source::Header(h) => headers
                .iter()
                .enumerate()
                .filter(|(_, x)| *x == h)
                .map(|(i, _)| i)
                .collect(),
            Source::ByName => normalised
                .iter()
                .enumerate()
                .filter(|(_, x)| x.as_deref() == Some(c.name.as_str()))
                .map(|(i, _)| i)
                .collect(),
        };
        let want = match &c.source {
            Source::Header(h) => format!("header {h:?}"),
            _ => format!("a header that normalises to {:?}", c.name),
        };
        match found.as_slice() {
            [i] => {
                if used[*i] {
                    errs.push(RowError {
                        column: Some(c.name.clone()),
                        ..err(format!(
                            "field {} ({:?}) is already the source of another column",
                            i + 1,
                            headers[*i]
                        ))
                    });
                    continue;
                }
                used[*i] = true;
                plans.push(FieldPlan {
                    src: *i,
                    col: ci,
                    name: c.name.clone(),
                    header: headers[*i].clone(),
                    ty: c.ty,
                    formats: c.formats.clone(),
                    only_empty_null: c.null_values.iter().all(|v| v.is_empty()),
                    nulls: c
                        .null_values
                        .iter()
                        .map(|v| v.as_bytes().to_vec())
                        .collect(),
                    true_values: c.true_values.clone(),
                    false_values: c.false_values.clone(),
                    pii: c.pii,
                    body: body.iter().position(|&b| b == ci),
                });
            }
            [] => errs.push(RowError {
                column: Some(c.name.clone()),
                ..err(format!(
                    "missing column: no {want}; the file has {}",
                    headers
                        .iter()
                        .map(|h| format!("{h:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
            many => errs.push(RowError {
                column: Some(c.name.clone()),
                ..err(format!(
                    "ambiguous: {want} matches fields {} ({}); name the exact source",
                    many.iter()
                        .map(|i| (i + 1).to_string())
                        .collect::<Vec<_>>()
                        .join(" and "),
                    many.iter()
                        .map(|&i| format!("{:?}", headers[i]))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }),
        }
    }
    if !contract.ignore_extra_columns {
        for (i, h) in headers.iter().enumerate() {
            if !used[i] {
                let what = if h.is_empty() {
                    format!("field {} has no header name", i + 1)
                } else {
                    format!("field {} ({h:?}) is not in the contract", i + 1)
                };
                errs.push(RowError {
                    field: Some(i + 1),
                    source_header: Some(h.clone()),
                    ..err(format!(
                        "unexpected column: {what}; declare it or set extra_columns = \"ignore\""
                    ))
                });
            }
        }
    }
    if errs.is_empty() {
        Ok(plans)
    } else {
        Err(errs)
    }
}

fn parse_value(
    p: &FieldPlan,
    raw: &[u8],
    n: Numeric,
    scratch: &mut Vec<u8>,
) -> Result<Val, String> {
    let t = parse::trim(raw);
    let is_null = if p.only_empty_null {
        t.is_empty() && !p.nulls.is_empty()
    } else {
        p.nulls.iter().any(|m| m.as_slice() == t)
    };
    if is_null {
        return Ok(Val::Null);
    }
    let r = |e: &'static str| e.to_string();
    Ok(match p.ty {
        ColumnType::String => {
            if std::str::from_utf8(raw).is_err() {
                return Err("not valid UTF-8: the file is not in the declared encoding; set csv.encoding (e.g. windows-1252)".into());
            }
            Val::Str(p.src)
        }
        ColumnType::Int => {
            Val::Int(parse::parse_int(t, n, i32::MIN as i64, i32::MAX as i64, scratch).map_err(r)?)
        }
        ColumnType::BigInt => {
            Val::Int(parse::parse_int(t, n, i64::MIN, i64::MAX, scratch).map_err(r)?)
        }
        ColumnType::Double => Val::F64(parse::parse_double(t, n, scratch).map_err(r)?),
        ColumnType::Decimal { precision, scale } => {
            Val::Dec(parse::parse_decimal(t, n, precision, scale, scratch).map_err(r)?)
        }
        ColumnType::Boolean => {
            Val::Bool(parse::parse_bool(t, &p.true_values, &p.false_values).map_err(r)?)
        }
        ColumnType::Date => match p.formats.iter().find_map(|f| f.parse_date(t)) {
            Some(d) => Val::Int(d as i64),
            None => return Err(format!("not a date in {}", show_formats(&p.formats))),
        },
        ColumnType::Timestamp => match p.formats.iter().find_map(|f| f.parse_timestamp_millis(t)) {
            Some(ms) => Val::Int(ms),
            None => return Err(format!("not a timestamp in {}", show_formats(&p.formats))),
        },
    })
}

fn show_formats(f: &[DateFormat]) -> String {
    let list: Vec<String> = f.iter().map(|x| format!("{:?}", x.as_str())).collect();
    if list.len() == 1 {
        format!("format {}", list[0])
    } else {
        format!("any of the formats {}", list.join(", "))
    }
}

fn push_two(buf: &mut String, v: u32) {
    buf.push((b'0' + (v / 10 % 10) as u8) as char);
    buf.push((b'0' + (v % 10) as u8) as char);
}

fn push_partition_value(
    buf: &mut String,
    t: Transform,
    ty: ColumnType,
    v: Val,
    record: &ByteRecord,
) {
    let days = |x: i64| {
        if ty == ColumnType::Timestamp {
            x.div_euclid(86_400_000) as i32
        } else {
            x as i32
        }
    };
    match (t, v) {
        (_, Val::Null) => buf.push_str(names::HIVE_DEFAULT_PARTITION),
        (Transform::Identity, Val::Str(i)) => {
            let s = std::str::from_utf8(&record[i]).unwrap_or_default();
            let s = s.trim();
            buf.push_str(&names::escape_partition_value(s));
        }
        (Transform::Year, Val::Int(x)) => {
            let (y, _, _) = datefmt::civil_from_days(days(x));
            if (0..10_000).contains(&y) {
                push_two(buf, (y / 100) as u32);
                push_two(buf, (y % 100) as u32);
            } else {
                buf.push_str(&y.to_string());
            }
        }
        (Transform::Month, Val::Int(x)) => push_two(buf, datefmt::civil_from_days(days(x)).1),
        (Transform::Day, Val::Int(x)) => push_two(buf, datefmt::civil_from_days(days(x)).2),
        _ => unreachable!("partition transforms were validated against column types"),
    }
}

fn write_reject(
    rejects: &mut Option<(csv::Writer<File>, PathBuf)>,
    staging: &Path,
    headers: &[String],
    has_header: bool,
    record: &ByteRecord,
    line: u64,
    reason: &str,
) -> Result<(), ConvertError> {
    if rejects.is_none() {
        let path = staging.join("rejects.csv");
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .from_path(&path)
            .map_err(|e| ConvertError::Output {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let mut head: Vec<String> = if has_header {
            headers.to_vec()
        } else {
            (0..headers.len())
                .map(|i| format!("field_{}", i + 1))
                .collect()
        };
        head.push("_lakemesh_line".into());
        head.push("_lakemesh_reason".into());
        w.write_record(&head).map_err(|e| ConvertError::Output {
            path: path.clone(),
            message: e.to_string(),
        })?;
        *rejects = Some((w, path));
    }
    let Some((w, path)) = rejects.as_mut() else {
        unreachable!("set above")
    };
    let mut row: Vec<Vec<u8>> = record.iter().map(|f| f.to_vec()).collect();
    row.push(line.to_string().into_bytes());
    row.push(reason.as_bytes().to_vec());
    w.write_record(&row).map_err(|e| ConvertError::Output {
        path: path.clone(),
        message: e.to_string(),
    })
}

#[derive(Serialize)]
struct ErrorReport<'a> {
    version: u32,
    file: &'a str,
    product: &'a str,
    policy: &'a str,
    outcome: &'a str,
    rows_read: u64,
    rows_rejected: u64,
    errors_total: u64,
    errors_listed: usize,
    errors: &'a [RowError],
}

#[allow(clippy::too_many_arguments)]
fn reject_file(
    contract: &Contract,
    input: &Path,
    file_name: &str,
    opts: &ConvertOptions,
    errors: Errors,
    why: String,
    rows_read: u64,
    rows_rejected: u64,
) -> ConvertError {
    let report = opts.report_dir.join(format!("{file_name}.error.json"));
    let body = ErrorReport {
        version: 1,
        file: file_name,
        product: &contract.name,
        policy: match contract.on_error {
            OnError::RejectFile => "reject_file",
            OnError::QuarantineRows => "quarantine_rows",
        },
        outcome: &why,
        rows_read,
        rows_rejected,
        errors_total: errors.total,
        errors_listed: errors.list.len(),
        errors: &errors.list,
    };
    let write = || -> io::Result<()> {
        std::fs::create_dir_all(&opts.report_dir)?;
        let json = serde_json::to_vec_pretty(&body).map_err(io::Error::other)?;
        write_atomic(&report, &json)
    };
    if let Err(e) = write() {
        return ConvertError::Io {
            path: report,
            source: e,
        };
    }
    let first = errors.list.into_iter().next().unwrap_or(RowError {
        line: 0,
        column: None,
        source_header: None,
        field: None,
        value: None,
        reason: why.clone(),
    });
    ConvertError::Rejected(Box::new(Rejection {
        file: input.to_path_buf(),
        report,
        first,
        errors_total: errors.total.max(1),
        rows_read,
        rows_rejected,
        why,
    }))
}

/// Writes a file durably: temp, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[derive(Serialize)]
struct ManifestColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    pii: String,
    source_name: String,
}

#[derive(Serialize)]
struct ManifestSource<'a> {
    file: &'a str,
    bytes: u64,
    sha256: &'a str,
}

#[derive(Serialize)]
struct Manifest<'a> {
    version: u32,
    batch_id: &'a str,
    product: &'a str,
    domain: &'a str,
    partition_keys: Vec<&'a str>,
    columns: Vec<ManifestColumn>,
    objects: &'a [OutputObject],
    rows: u64,
    source: ManifestSource<'a>,
    produced_at: String,
    agent_version: &'a str,
}

#[allow(clippy::too_many_arguments)]
fn write_manifest(
    contract: &Contract,
    plans: &[FieldPlan],
    out_dir: &Path,
    batch_id: &str,
    file_name: &str,
    source_bytes: u64,
    sha: &str,
    rows: u64,
    objects: &[OutputObject],
) -> Result<PathBuf, ConvertError> {
    let columns = contract
        .body_columns()
        .map(|(i, c)| ManifestColumn {
            name: c.name.clone(),
            ty: c.output_type().to_string(),
            pii: c.pii.to_string(),
            source_name: plans
                .iter()
                .find(|p| p.col == i)
                .map_or_else(|| c.name.clone(), |p| p.header.clone()),
        })
        .collect();
    let m = Manifest {
        version: 1,
        batch_id,
        product: &contract.name,
        domain: &contract.domain,
        partition_keys: contract
            .partition_by
            .iter()
            .map(|p| p.name.as_str())
            .collect(),
        columns,
        objects,
        rows,
        source: ManifestSource {
            file: file_name,
            bytes: source_bytes,
            sha256: sha,
        },
        produced_at: now_rfc3339(),
        agent_version: env!("CARGO_PKG_VERSION"),
    };
    let dir = out_dir
        .join("_lakemesh")
        .join("manifests")
        .join(&contract.name);
    let path = dir.join(format!("{batch_id}.json"));
    let json = serde_json::to_vec_pretty(&m).map_err(|e| ConvertError::Output {
        path: path.clone(),
        message: e.to_string(),
    })?;
    std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    write_atomic(&path, &json).map_err(io_at(&path))?;
    Ok(path)
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let ts = datefmt::format_timestamp_millis(secs * 1000);
    format!("{}Z", ts.replacen(' ', "T", 1))
}
