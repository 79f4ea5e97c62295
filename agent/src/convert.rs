//! The conversion pipeline: one CSV export → typed, pseudonymised, Hive-partitioned Parquet.
//!
//! Streams the decoded source through the tokenizer ([`crate::tokenize`]) and parses every value
//! by the contract straight into the buffer of the row's partition (the common shapes through fast
//! paths, everything else and every error by the general rules): the partition key is parsed
//! first. A buffer is handed to the encoder when it makes a row group's worth (a month of a
//! sorted export) or, largest first, when the buffers reach the memory budget (a month spread
//! over the whole file); the encoder, on this thread or with two threads or more on encoder
//! threads beside it, turns it into pages of the partition's open row group at once, and each
//! partition becomes one row group at the end ([`crate::writer`], [`crate::chunk`]). This side
//! decides which row groups stay open (at most [`max_open`], least recently fed closed first),
//! so the files are the same, byte for byte, for any thread count. Files are written into a
//! staging folder and moved into place only when the whole file succeeded. Owns the error
//! policy (`reject_file`, `quarantine_rows`), the error report and the batch manifest.
//! It does not upload or announce.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use std::sync::Arc;

use arrow_schema::SchemaRef;
use lakemesh_shared::names;
use parquet::file::metadata::KeyValue;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::chunk::Compressor;
use crate::columns::{BatchBuilder, Column, Values, body_schema};
use crate::contract::{ColumnType, Contract, OnError, Pii, Source, Transform};
use crate::datefmt::{self, DateCache, DateFormat};
use crate::decode::{self, DecodeError};
use crate::intern::Interner;
use crate::parse::{self, Numeric};
use crate::pii::{self, PseudonymKey};
use crate::readahead::ReadAhead;
use crate::spill::{RowSpill, SpillArena};
use crate::tokenize::{Block, Record, TokenizeError, Tokenizer};
use crate::writer::{
    EncodeError, Encoder, PartitionWriter, TableWriterSettings, WrittenFile, is_big,
    opens_row_group, partition_dir, plain_columns, sync_files, writer_properties,
};

mod columnar;

/// How many located errors a report lists (the counts cover all of them).
pub const MAX_REPORTED_ERRORS: usize = 100;

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
    /// Records read at a time, and whether a block of them is parsed a column at a time (else
    /// record by record, the path that also reports errors). For tests: the output is the same
    /// either way.
    #[doc(hidden)]
    pub block_rows: usize,
    #[doc(hidden)]
    pub columnar: bool,
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
            block_rows: columnar::BLOCK_ROWS,
            columnar: true,
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
    /// Position among the partition source values, if a partition key derives from it.
    part_slot: Option<usize>,
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

/// Rows of one partition waiting on the parsing side.
struct PartBuf {
    dir: Arc<str>,
    values: Vec<(String, String)>,
    buf: BatchBuilder,
    /// Bytes this buffer counts against the parsing side's budget.
    bytes: usize,
}

/// Share of the memory budget for rows waiting on the parsing side (counted bytes; vectors grow
/// by doubling, so the allocation can be twice that). The rest: the pages kept in memory
/// ([`arena_cap`]) and the open row groups' dictionaries and page lists ([`max_open`]).
fn parse_budget(total: usize) -> usize {
    (total / 2).max(256 * 1024)
}

/// Bytes of finished pages kept in memory before they go to the spill file.
fn arena_cap(total: usize) -> usize {
    (total / 4).max(1024 * 1024)
}

/// Row groups kept open at once (each holds its dictionaries, up to 256 KiB a column, and a page
/// list): beyond, the least recently fed is written.
fn max_open(total: usize) -> usize {
    (total / (512 * 1024)).max(16)
}

/// The files of each partition, by partition id.
type WorkerResult = Result<Vec<(usize, Vec<WrittenFile>)>, EncodeError>;

/// What the router sends an encoder thread.
enum Job {
    /// Rows of a partition (id, folder).
    Rows(usize, Arc<str>, BatchBuilder),
    /// Write the partition's open row group now.
    Close(usize),
}

/// Where finished buffers go while the file is read: an encoder on this thread, or encoder
/// threads beside it, each owning the partitions `id % threads == shard`.
enum Sink {
    Inline(Box<Encoder>),
    Threads(Shards),
}

struct Shards {
    senders: Vec<std::sync::mpsc::SyncSender<Job>>,
    handles: Vec<std::thread::JoinHandle<WorkerResult>>,
    /// Set when the conversion stops early: the encoders drop what they hold unwritten.
    abort: Arc<std::sync::atomic::AtomicBool>,
}

/// What every encoder of one conversion shares.
struct Backend {
    settings: Arc<TableWriterSettings>,
    arena: SpillArena,
    sink: Sink,
}

impl Backend {
    fn start(
        settings: Arc<TableWriterSettings>,
        staging: &Path,
        threads: usize,
        budget: usize,
        types: &[ColumnType],
    ) -> Result<Self, ConvertError> {
        let arena = SpillArena::new(staging.join("pages.spill"), arena_cap(budget));
        let spill = Arc::new(RowSpill::new(staging.join("rows.spill")));
        let encoders = threads.saturating_sub(1).max(1);
        let encoder = || {
            Encoder::new(
                settings.clone(),
                staging.to_path_buf(),
                arena.clone(),
                spill.clone(),
                types.to_vec(),
            )
            .map_err(encode_error)
        };
        let sink = if threads <= 1 {
            Sink::Inline(Box::new(encoder()?))
        } else {
            let mut senders = Vec::new();
            let mut handles = Vec::new();
            let abort = Arc::new(std::sync::atomic::AtomicBool::new(false));
            for shard in 0..encoders {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(4);
                let mut enc = encoder()?;
                let stop = abort.clone();
                let h = std::thread::Builder::new()
                    .name(format!("encode-{shard}"))
                    .spawn(move || -> WorkerResult {
                        for job in rx {
                            if stop.load(Ordering::Relaxed) {
                                return Ok(Vec::new());
                            }
                            match job {
                                Job::Rows(id, dir, batch) => enc.write(id, &dir, &batch)?,
                                Job::Close(id) => enc.close(id)?,
                            }
                        }
                        if stop.load(Ordering::Relaxed) {
                            return Ok(Vec::new());
                        }
                        enc.finish()
                    })
                    .map_err(io_at(staging))?;
                senders.push(tx);
                handles.push(h);
            }
            Sink::Threads(Shards {
                senders,
                handles,
                abort,
            })
        };
        Ok(Self {
            settings,
            arena,
            sink,
        })
    }

    fn write(
        &mut self,
        id: usize,
        dir: &Arc<str>,
        batch: BatchBuilder,
    ) -> Result<(), ConvertError> {
        match &mut self.sink {
            Sink::Inline(enc) => enc.write(id, dir, &batch).map_err(encode_error),
            Sink::Threads(_) => self.send(id, Job::Rows(id, dir.clone(), batch)),
        }
    }

    fn close(&mut self, id: usize) -> Result<(), ConvertError> {
        match &mut self.sink {
            Sink::Inline(enc) => enc.close(id).map_err(encode_error),
            Sink::Threads(_) => self.send(id, Job::Close(id)),
        }
    }

    /// Sends a job to the encoder thread owning partition `id`.
    fn send(&mut self, id: usize, job: Job) -> Result<(), ConvertError> {
        let Sink::Threads(s) = &mut self.sink else {
            unreachable!("threaded")
        };
        let n = s.senders.len();
        if s.senders[id % n].send(job).is_ok() {
            return Ok(());
        }
        // The encoder stopped: it failed, and its error says why.
        let abort = s.abort.clone();
        let shards = std::mem::replace(
            s,
            Shards {
                senders: Vec::new(),
                handles: Vec::new(),
                abort,
            },
        );
        match shards.join() {
            Err(e) => Err(e),
            Ok(_) => Err(ConvertError::Output {
                path: PathBuf::new(),
                message: "an encoder thread stopped without an error".into(),
            }),
        }
    }

    /// Writes every open row group, closes the files and returns them by partition id.
    fn finish(self) -> Result<Vec<(usize, Vec<WrittenFile>)>, ConvertError> {
        match self.sink {
            Sink::Inline(enc) => enc.finish().map_err(encode_error),
            Sink::Threads(s) => s.join(),
        }
    }
}

impl Shards {
    /// Closes the channels and waits for every encoder; the first error wins.
    fn join(mut self) -> Result<Vec<(usize, Vec<WrittenFile>)>, ConvertError> {
        self.senders.clear();
        let mut out = Vec::new();
        let mut first_err = None;
        for h in self.handles.drain(..) {
            match h.join() {
                Ok(Ok(parts)) => out.extend(parts),
                Ok(Err(e)) => {
                    first_err.get_or_insert(encode_error(e));
                }
                Err(_) => {
                    first_err.get_or_insert(ConvertError::Output {
                        path: PathBuf::new(),
                        message: "an encoder thread panicked".into(),
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

impl Drop for Shards {
    /// A conversion that stops early (a rejected file) stops its encoders, without writing
    /// what they hold, and waits for them before the staging folder is removed.
    fn drop(&mut self) {
        self.abort.store(true, Ordering::Relaxed);
        self.senders.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn encode_error(e: EncodeError) -> ConvertError {
    ConvertError::Io {
        path: e.dir,
        source: e.source,
    }
}

/// A partition's folder, key values and files.
type Finished = (String, Vec<(String, String)>, Vec<WrittenFile>);

/// Bytes of a text column's interner at least (else the column is not interned).
const MIN_INTERNER_BYTES: usize = 16 * 1024;

/// Rows between two looks at the partition buffers (row groups to start, the budget).
const CHECK_ROWS: u32 = 4096;

/// Counted bytes added between two looks at most, besides [`CHECK_ROWS`]: an eighth of the
/// parsing budget, between 64 KiB and 64 MiB. Long records (a 10 MB note) would otherwise pile
/// up far beyond the budget before the next look, and a partition's text past the 2 GiB its
/// 32-bit offsets can address.
fn check_bytes(budget: usize) -> usize {
    (budget / 8).clamp(64 * 1024, 64 * 1024 * 1024)
}

/// The parsing side: partition buffers under a byte budget, and the encoders they drain into
/// (started at the first hand-over, once the dictionary decision can be made from real rows).
struct Router {
    output: crate::contract::OutputSettings,
    schema: SchemaRef,
    metadata: Vec<KeyValue>,
    staging: PathBuf,
    threads: usize,
    budget_total: usize,
    budget: usize,
    held: usize,
    parts: Vec<PartBuf>,
    types: Vec<ColumnType>,
    /// Partitions whose row group is open in the encoders, least recently fed first, and
    /// which are.
    open: VecDeque<usize>,
    is_open: Vec<bool>,
    max_open: usize,
    /// Partitions fed since the last look, and which are listed.
    touched: Vec<usize>,
    marks: Vec<bool>,
    /// Rows added since the last look, and the bytes held at which the next one comes
    /// whatever the rows ([`check_bytes`]).
    since_check: u32,
    check_at: usize,
    backend: Option<Backend>,
    ensure_one: bool,
    /// Each body column's interner, if its values go through one, and scratch for
    /// [`Column::localize`](crate::columns::Column::localize).
    interners: Vec<Option<Interner>>,
    seen: Vec<u32>,
}

impl Router {
    fn backend(&mut self) -> Result<&mut Backend, ConvertError> {
        if self.backend.is_none() {
            let plain = plain_columns(&self.schema, self.parts.iter().map(|p| &p.buf));
            if !plain.is_empty() {
                log::debug!(
                    "plain encoding (mostly distinct values): {}",
                    plain.join(", ")
                );
            }
            let props = writer_properties(&self.output, self.metadata.clone(), &plain).map_err(
                |message| ConvertError::Output {
                    path: self.staging.clone(),
                    message,
                },
            )?;
            let settings = Arc::new(
                TableWriterSettings::new(self.schema.clone(), props, &self.output).map_err(
                    |message| ConvertError::Output {
                        path: self.staging.clone(),
                        message,
                    },
                )?,
            );
            self.backend = Some(Backend::start(
                settings,
                &self.staging,
                self.threads,
                self.budget_total,
                &self.types,
            )?);
        }
        let Some(b) = self.backend.as_mut() else {
            unreachable!("started above")
        };
        Ok(b)
    }

    /// Takes partition `i`'s rows, leaving room for as many again within its share of the
    /// budget.
    fn take_batch(&mut self, i: usize) -> Option<BatchBuilder> {
        let share = self.budget / self.parts.len().max(1);
        let part = &mut self.parts[i];
        if part.buf.rows == 0 {
            return None;
        }
        let keep = part.buf.rows.min(share * part.buf.rows / part.bytes.max(1));
        self.held -= part.bytes;
        part.bytes = 0;
        let mut batch = part.buf.take_reserving(keep);
        batch.localize(&self.interners, &mut self.seen);
        // a column whose interner stopped looking goes on as plain text
        for (c, i) in part.buf.cols.iter_mut().zip(&self.interners) {
            if i.as_ref().is_some_and(|i| !i.enabled())
                && matches!(c.values, Values::Interned { .. })
            {
                *c = Column::new(ColumnType::String);
            }
        }
        Some(batch)
    }

    /// Hands partition `i`'s rows to the encoder, keeping the open row groups within their
    /// number (the least recently fed is written first).
    fn flush(&mut self, i: usize) -> Result<(), ConvertError> {
        if self.parts[i].buf.rows == 0 {
            return Ok(());
        }
        self.backend()?;
        let Some(batch) = self.take_batch(i) else {
            return Ok(());
        };
        if self.is_open[i] {
            if self.open.back() != Some(&i) {
                self.open.retain(|&p| p != i);
                self.open.push_back(i);
            }
        } else if opens_row_group(batch.rows) {
            self.is_open[i] = true;
            self.open.push_back(i);
        }
        let dir = self.parts[i].dir.clone();
        self.backend()?.write(i, &dir, batch)?;
        while self.open.len() > self.max_open {
            let Some(old) = self.open.pop_front() else {
                break;
            };
            self.is_open[old] = false;
            self.backend()?.close(old)?;
        }
        Ok(())
    }

    /// Registers a new partition: its folder and key values; returns its number.
    fn add_part(&mut self, dir: Arc<str>, values: Vec<(String, String)>) -> usize {
        let interned: Vec<bool> = self
            .interners
            .iter()
            .map(|i| i.as_ref().is_some_and(Interner::enabled))
            .collect();
        self.parts.push(PartBuf {
            dir,
            values,
            buf: BatchBuilder::with_interned(&self.types, &interned),
            bytes: 0,
        });
        self.marks.push(false);
        self.is_open.push(false);
        self.parts.len() - 1
    }

    /// The buffer rows of partition `i` are parsed into, and the interners of its columns.
    fn buf(&mut self, i: usize) -> (&mut BatchBuilder, &mut [Option<Interner>]) {
        (&mut self.parts[i].buf, &mut self.interners)
    }

    /// Counts a complete row appended to partition `i`'s buffer (`bytes` against the budget);
    /// every [`CHECK_ROWS`] rows, looks at the buffers.
    #[inline]
    fn row_added(&mut self, i: usize, bytes: usize) -> Result<(), ConvertError> {
        self.rows_added(i, 1, bytes);
        self.since_check += 1;
        if self.since_check >= CHECK_ROWS || self.held >= self.check_at {
            self.check()?;
        }
        Ok(())
    }

    /// Counts `rows` complete rows appended to partition `i`'s buffer (`bytes` against the
    /// budget), without looking at the buffers: [`Router::rows_counted`] does once every
    /// partition's rows are counted.
    #[inline]
    fn rows_added(&mut self, i: usize, rows: usize, bytes: usize) {
        let p = &mut self.parts[i];
        p.buf.rows += rows;
        p.bytes += bytes;
        self.held += bytes;
        if !self.marks[i] {
            self.marks[i] = true;
            self.touched.push(i);
        }
    }

    /// After [`Router::rows_added`] of `rows` rows in all: every [`CHECK_ROWS`] rows, looks at
    /// the buffers.
    fn rows_counted(&mut self, rows: usize) -> Result<(), ConvertError> {
        self.since_check += rows as u32;
        if self.since_check >= CHECK_ROWS || self.held >= self.check_at {
            self.check()?;
        }
        Ok(())
    }

    /// Hands buffers over when they make a row group or the budget is exceeded (largest
    /// first).
    fn check(&mut self) -> Result<(), ConvertError> {
        self.since_check = 0;
        for k in 0..self.touched.len() {
            let i = self.touched[k];
            self.marks[i] = false;
            if is_big(self.parts[i].buf.rows, self.parts[i].bytes) {
                self.flush(i)?;
            }
        }
        self.touched.clear();
        // Over the budget, the largest buffers go, one at a time, until it holds again: a few
        // batches per look, which encoder threads take while this one parses on.
        if self.held > self.budget {
            while self.held > self.budget {
                let Some((j, _)) = self.parts.iter().enumerate().max_by_key(|(_, p)| p.bytes)
                else {
                    break;
                };
                if self.parts[j].bytes == 0 {
                    break;
                }
                self.flush(j)?;
            }
        }
        self.check_at = self.held + check_bytes(self.budget);
        Ok(())
    }

    /// Writes every partition: what is still buffered here goes to the encoders, which write
    /// their open row groups and close the files.
    fn finish(mut self) -> Result<Vec<Finished>, ConvertError> {
        if self.parts.is_empty() && self.ensure_one {
            self.add_part(Arc::from(""), Vec::new());
        }
        self.backend()?;
        for i in 0..self.parts.len() {
            self.flush(i)?;
        }
        let Some(backend) = self.backend.take() else {
            unreachable!("started above")
        };
        let settings = backend.settings.clone();
        let arena = backend.arena.clone();
        let mut done = backend.finish()?;
        log::debug!("{} bytes of pages spilled", arena.spilled_bytes());
        if self.ensure_one && done.iter().all(|(_, files)| files.is_empty()) {
            // no rows at all: one empty, typed file
            let mut comp = Compressor::new(settings.codec).map_err(|e| ConvertError::Output {
                path: self.staging.clone(),
                message: e.to_string(),
            })?;
            let w = PartitionWriter::new(partition_dir(&self.staging, ""), settings, arena);
            let files = w
                .finish(&mut comp, true)
                .map_err(io_at(&self.staging.join("data")))?;
            sync_files(&files).map_err(io_at(&self.staging.join("data")))?;
            done.retain(|(i, _)| *i != 0);
            done.push((0, files));
        }
        let mut out: Vec<Finished> = done
            .into_iter()
            .map(|(i, files)| {
                let p = &mut self.parts[i];
                (p.dir.to_string(), std::mem::take(&mut p.values), files)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
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
fn show_record(r: &Record, delimiter: u8) -> String {
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
    if opts.threads > 1 {
        // reading, hashing and transcoding on a thread of their own: parsing is what the others
        // wait for
        let inner = std::mem::replace(&mut decoded.reader, Box::new(std::io::empty()));
        decoded.reader = Box::new(ReadAhead::spawn(inner).map_err(io_at(input))?);
    }
    let mut rdr = Tokenizer::new(&mut decoded.reader, decoded.delimiter, csv_cfg.quote)
        .check_utf8(decoded.check_utf8);
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
    let mut first = Record::new();
    let has_first = loop {
        match rdr.read_record(&mut first) {
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
    let first_line = first.line() + line_offset;
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

    let mut plans = match plan_fields(contract, &headers, first_line) {
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

    // Body schema.
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
    // What a row costs in the buffers besides its text.
    let fixed_row_bytes: usize = body_types
        .iter()
        .map(|t| match t {
            ColumnType::String | ColumnType::Int | ColumnType::Date => 4,
            ColumnType::BigInt | ColumnType::Timestamp | ColumnType::Double => 8,
            ColumnType::Decimal { precision, .. } if *precision <= 18 => 8,
            ColumnType::Decimal { .. } => 16,
            ColumnType::Boolean => 1,
        })
        .sum();
    let schema = body_schema(&body_cols);
    let ensure_one = contract.partition_by.is_empty();
    // Text kept as it is exported goes through an interner per column (bounded, counted in the
    // parsing side's budget).
    // A sixteenth of the budget at most, at least 16 KiB a column: a very wide export interns
    // only its first text columns.
    let mut interners: Vec<Option<Interner>> = (0..body_types.len()).map(|_| None).collect();
    let mut budget = parse_budget(opts.memory_budget_bytes);
    let share = budget / 16;
    let mut interned: Vec<usize> = plans
        .iter()
        .filter(|p| p.ty == ColumnType::String && p.pii == Pii::Keep)
        .filter_map(|p| p.body)
        .collect();
    interned.truncate(share / MIN_INTERNER_BYTES);
    if !interned.is_empty() {
        let limit = (share / interned.len()).clamp(MIN_INTERNER_BYTES, 1024 * 1024);
        for &bi in &interned {
            interners[bi] = Some(Interner::new(limit));
        }
        budget -= limit * interned.len();
    }
    let router = Router {
        output: contract.output.clone(),
        schema,
        metadata: vec![
            KeyValue::new("lakemesh.product".to_string(), contract.name.clone()),
            KeyValue::new("lakemesh.domain".to_string(), contract.domain.clone()),
            KeyValue::new("lakemesh.source_file".to_string(), file_name.to_string()),
        ],
        staging: staging.to_path_buf(),
        threads: opts.threads.max(1),
        budget_total: opts.memory_budget_bytes,
        budget,
        held: 0,
        parts: Vec::new(),
        types: body_types.clone(),
        open: VecDeque::new(),
        is_open: Vec::new(),
        max_open: max_open(opts.memory_budget_bytes),
        touched: Vec::new(),
        marks: Vec::new(),
        since_check: 0,
        check_at: check_bytes(budget),
        backend: None,
        ensure_one,
        interners,
        seen: Vec::new(),
    };
    // Partition keys: which planned field each derives from.
    let part_plans: Vec<usize> = contract
        .partition_by
        .iter()
        .map(|spec| {
            plans
                .iter()
                .position(|p| p.col == spec.column)
                .unwrap_or_else(|| unreachable!("partition columns are planned"))
        })
        .collect();
    let mut part_src: Vec<usize> = part_plans.clone();
    part_src.sort_unstable();
    part_src.dedup();
    for (slot, &pi) in part_src.iter().enumerate() {
        plans[pi].part_slot = Some(slot);
    }
    let plans = plans;
    let fast: Vec<Fast> = plans
        .iter()
        .map(|p| {
            Fast::of(
                p,
                csv_cfg.thousands.is_none(),
                csv_cfg.decimal,
                csv_cfg.trim_strings,
            )
        })
        .collect();
    // When every key derives from one date or timestamp column (year/month/day of it), the
    // partition of a row depends on its day alone: a table by day skips the calendar arithmetic
    // and the key lookup for most rows.
    let day_parts: Option<DayParts> = (part_src.len() == 1
        && contract
            .partition_by
            .iter()
            .all(|s| s.transform != Transform::Identity))
    .then(|| DayParts::new(plans[part_src[0]].ty == ColumnType::Timestamp));
    let date_caches: Vec<DateCache> = plans
        .iter()
        .map(|p| {
            if p.ty == ColumnType::Date {
                DateCache::default()
            } else {
                DateCache::none()
            }
        })
        .collect();
    let mut parser = Parser {
        contract,
        plans: &plans,
        pvals: vec![Val::Null; part_src.len()],
        fast,
        part_src,
        part_plans,
        width,
        delimiter: decoded.delimiter,
        check_utf8: decoded.check_utf8,
        numeric: Numeric {
            decimal: csv_cfg.decimal,
            thousands: csv_cfg.thousands,
        },
        ctx: RowContext {
            trim_strings: csv_cfg.trim_strings,
            key: opts.key.as_ref(),
        },
        fixed_row_bytes,
        quarantine: contract.on_error == OnError::QuarantineRows,
        staging,
        headers: &headers,
        line_offset,
        errors,
        rows_read: 0,
        rows_written: 0,
        rows_rejected: 0,
        doomed: false,
        scratch: Vec::new(),
        date_caches,
        text_buf: String::with_capacity(128),
        key_buf: Vec::with_capacity(32),
        last_key: Vec::with_capacity(32),
        last_part: usize::MAX,
        index: FxHashMap::default(),
        dirs: FxHashMap::default(),
        nparts: 0,
        day_parts,
        router,
        rejects: None,
        columnar: columnar::Scratch::default(),
    };
    let quarantine = parser.quarantine;

    // Records come a block at a time, and a block goes through column by column when it can
    // (see `columnar`); else, and with footer rows to hold back, record by record.
    let mut footer: VecDeque<Record> = VecDeque::new();
    let footer_n = csv_cfg.skip_footer_rows as usize;
    let mut row_by_row = |parser: &mut Parser, record: &Record| -> Result<(), ConvertError> {
        if footer_n == 0 {
            return parser.row(record);
        }
        // Footer lines are counted as exported, blank-looking ones included.
        footer.push_back(record.clone());
        if footer.len() <= footer_n {
            return Ok(());
        }
        let Some(r) = footer.pop_front() else {
            unreachable!("len > n >= 1")
        };
        parser.row(&r)
    };
    if !csv_cfg.header {
        row_by_row(&mut parser, &first)?;
    }
    let mut block = Block::new(width, decoded.delimiter);
    let mut last_progress = 0u64;
    loop {
        match rdr.read_block(&mut block, opts.block_rows.max(1), columnar::BLOCK_BYTES) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                parser.errors.push(csv_error(&e, line_offset));
                let (read, rejected) = (parser.rows_read, parser.rows_rejected);
                return Err(reject(parser.errors, "unreadable".into(), read, rejected));
            }
        }
        if let Some(odd) = block.odd() {
            row_by_row(&mut parser, odd)?;
        } else if footer_n > 0 || !opts.columnar || !parser.block(&block)? {
            for i in 0..block.len() {
                row_by_row(&mut parser, &block.record(i))?;
            }
        }
        if let Some(p) = &opts.progress {
            let b = decoded.bytes_read.load(Ordering::Relaxed);
            if b >> 22 != last_progress >> 22 {
                p(b);
                last_progress = b;
            }
        }
    }
    if let Some(p) = &opts.progress {
        p(decoded.bytes_read.load(Ordering::Relaxed));
    }
    drop(rdr);
    let Parser {
        errors,
        rows_read,
        rows_written,
        rows_rejected,
        router,
        rejects,
        nparts,
        ..
    } = parser;

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

    let phase1 = started.elapsed().as_secs_f64();
    log::debug!("read and parsed in {phase1:.2} s, {nparts} partitions");
    let written = router.finish()?;
    log::debug!(
        "last rows encoded in {:.2} s",
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

/// What every record of an export goes through once the header is read: the plans of its fields,
/// the partitions found so far, the buffers they fill (in the [`Router`]) and the errors.
struct Parser<'a> {
    contract: &'a Contract,
    plans: &'a [FieldPlan],
    fast: Vec<Fast<'a>>,
    /// The planned fields partition keys derive from (each once, in plan order; a field's
    /// `part_slot` is its place here), and the field of each key.
    part_src: Vec<usize>,
    part_plans: Vec<usize>,
    /// Fields a record must have.
    width: usize,
    delimiter: u8,
    /// Whether the decoder passes bytes through unchecked (UTF-8 is then checked here).
    check_utf8: bool,
    numeric: Numeric,
    ctx: RowContext<'a>,
    /// What a row costs in the buffers besides its text.
    fixed_row_bytes: usize,
    quarantine: bool,
    staging: &'a Path,
    headers: &'a [String],
    line_offset: u64,
    errors: Errors,
    rows_read: u64,
    rows_written: u64,
    rows_rejected: u64,
    /// `reject_file` after the first error: keep counting, stop writing.
    doomed: bool,
    /// The values of the partition sources of the record at hand, by slot.
    pvals: Vec<Val>,
    scratch: Vec<u8>,
    date_caches: Vec<DateCache>,
    text_buf: String,
    key_buf: Vec<u8>,
    last_key: Vec<u8>,
    last_part: usize,
    /// Partitions by key, and by folder (two keys can name one folder).
    index: FxHashMap<Box<[u8]>, usize>,
    dirs: FxHashMap<String, usize>,
    nparts: usize,
    day_parts: Option<DayParts>,
    router: Router,
    rejects: Option<(csv::Writer<File>, PathBuf)>,
    columnar: columnar::Scratch,
}

impl Parser<'_> {
    /// One record, unless it is blank.
    fn row(&mut self, record: &Record) -> Result<(), ConvertError> {
        if is_blank(record) {
            return Ok(());
        }
        self.rows_read += 1;
        self.record(record)
    }

    /// The partition of a record whose partition sources are parsed into `pvals` (added when
    /// new); `field` gives the record's fields.
    fn partition<'r>(&mut self, field: impl Fn(usize) -> &'r [u8]) -> usize {
        if self.part_plans.is_empty() {
            if self.nparts == 0 {
                self.router.add_part(Arc::from(""), Vec::new());
                self.nparts = 1;
            }
            return 0;
        }
        if let Some(i) = self.day_parts.as_ref().and_then(|c| match self.pvals[0] {
            Val::Int(x) => c.get(x),
            _ => None,
        }) {
            return i;
        }
        let contract = self.contract;
        self.key_buf.clear();
        for (k, spec) in contract.partition_by.iter().enumerate() {
            let p = &self.plans[self.part_plans[k]];
            let slot = p.part_slot.unwrap_or_else(|| unreachable!("planned"));
            push_partition_key(
                &mut self.key_buf,
                spec.transform,
                p.ty,
                self.pvals[slot],
                &field,
            );
        }
        if self.key_buf == self.last_key && self.last_part != usize::MAX {
            return self.last_part;
        }
        let i = match self.index.get(self.key_buf.as_slice()) {
            Some(&i) => i,
            None => {
                let mut dir = String::new();
                let mut values = Vec::new();
                for (k, spec) in contract.partition_by.iter().enumerate() {
                    let p = &self.plans[self.part_plans[k]];
                    let slot = p.part_slot.unwrap_or_else(|| unreachable!("planned"));
                    let mut v = String::new();
                    push_partition_value(&mut v, spec.transform, p.ty, self.pvals[slot], &field);
                    if k > 0 {
                        dir.push('/');
                    }
                    dir.push_str(&spec.name);
                    dir.push('=');
                    dir.push_str(&v);
                    values.push((spec.name.clone(), v));
                }
                // Two keys can name one folder (a value spelled like the null folder): they
                // share its buffer.
                let i = match self.dirs.get(dir.as_str()) {
                    Some(&i) => i,
                    None => {
                        let i = self.router.add_part(Arc::from(dir.as_str()), values);
                        self.nparts += 1;
                        self.dirs.insert(dir, i);
                        i
                    }
                };
                self.index
                    .insert(self.key_buf.clone().into_boxed_slice(), i);
                i
            }
        };
        self.last_key.clone_from(&self.key_buf);
        self.last_part = i;
        if let (Some(c), Val::Int(x)) = (self.day_parts.as_mut(), self.pvals[0]) {
            c.set(x, i);
        }
        i
    }

    /// One record that is not blank, counted as read: parsed into its partition's buffer, or
    /// its errors recorded (and the record quarantined or the file doomed).
    fn record(&mut self, record: &Record) -> Result<(), ConvertError> {
        let line = record.line() + self.line_offset;
        let plans = self.plans;

        // Shape.
        let before = self.errors.total;
        if record.len() != self.width {
            let width = self.width;
            let hint = if record.len() < width {
                " (a record split by an unquoted line break, or missing fields)"
            } else {
                " (an unquoted delimiter inside a value, or extra fields)"
            };
            self.errors.push(RowError {
                line,
                column: None,
                source_header: None,
                field: None,
                value: Some(show_record(record, self.delimiter)),
                reason: format!("expected {width} fields, found {}{hint}", record.len()),
            });
        } else {
            // Pass-through UTF-8 is checked once per record; only a bad record is checked
            // field by field, to say which value is wrong.
            let check_fields = self.check_utf8
                && !record.known_utf8()
                && std::str::from_utf8(record.as_slice()).is_err();
            let errors = &mut self.errors;
            let mut field_error = |p: &FieldPlan, raw: &[u8], reason: String| {
                errors.push(RowError {
                    line,
                    column: Some(p.name.clone()),
                    source_header: Some(p.header.clone()),
                    field: Some(p.src + 1),
                    value: Some(show_value(raw)),
                    reason,
                });
            };
            // Partition sources first: they choose the buffer.
            let mut bad = false;
            for (slot, &pi) in self.part_src.iter().enumerate() {
                let p = &plans[pi];
                let raw = &record[p.src];
                self.pvals[slot] = match parse_value(
                    p,
                    raw,
                    self.numeric,
                    check_fields,
                    &mut self.scratch,
                    &mut self.date_caches[pi],
                ) {
                    Ok(v) => v,
                    Err(reason) => {
                        field_error(p, raw, reason);
                        bad = true;
                        Val::Null
                    }
                };
            }
            let pi = if bad || self.doomed {
                None
            } else {
                Some(self.partition(|i| &record[i]))
            };
            // Every value, into the partition's buffer (or nowhere when the row cannot be
            // written anyway).
            let errors = &mut self.errors;
            let mut field_error = |p: &FieldPlan, raw: &[u8], reason: String| {
                errors.push(RowError {
                    line,
                    column: Some(p.name.clone()),
                    source_header: Some(p.header.clone()),
                    field: Some(p.src + 1),
                    value: Some(show_value(raw)),
                    reason,
                });
            };
            let mut target = pi.map(|i| self.router.buf(i));
            let base = record.padded();
            let mut text = 0usize;
            for (fi, p) in plans.iter().enumerate() {
                let raw = &record[p.src];
                // The common cases straight into the column; anything else (nulls other than
                // empty, pseudonyms, unusual notation, errors) by the general rules below.
                if !bad
                    && !check_fields
                    && let Some(bi) = self.fast[fi].body()
                    && let Some((t, interners)) = target.as_mut()
                    && let Some(n) = fast_append(
                        &self.fast[fi],
                        base,
                        raw,
                        &mut t.cols[bi],
                        interners[bi].as_mut(),
                    )
                {
                    text += n;
                    continue;
                }
                let v = match p.part_slot {
                    Some(slot) => self.pvals[slot],
                    None => match parse_value(
                        p,
                        raw,
                        self.numeric,
                        check_fields,
                        &mut self.scratch,
                        &mut self.date_caches[fi],
                    ) {
                        Ok(v) => v,
                        Err(reason) => {
                            field_error(p, raw, reason);
                            bad = true;
                            continue;
                        }
                    },
                };
                if let Some(bi) = p.body
                    && !bad
                    && let Some((t, _)) = target.as_mut()
                {
                    text += append_value(
                        &mut t.cols[bi],
                        p,
                        v,
                        raw,
                        base,
                        &self.ctx,
                        &mut self.text_buf,
                    );
                }
            }
            match (pi, bad) {
                (Some(i), false) => {
                    self.rows_written += 1;
                    self.router.row_added(i, self.fixed_row_bytes + text)?;
                }
                _ => {
                    if let Some((t, _)) = target {
                        t.rollback();
                    }
                }
            }
        }
        if self.errors.total > before {
            self.rows_rejected += 1;
            if self.quarantine {
                let reason = self
                    .errors
                    .list
                    .last()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                write_reject(
                    &mut self.rejects,
                    self.staging,
                    self.headers,
                    self.contract.csv.header,
                    record,
                    line,
                    &reason,
                )?;
            } else {
                self.doomed = true;
            }
        }
        Ok(())
    }
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

fn is_blank(r: &Record) -> bool {
    r.is_empty() || (r.len() == 1 && parse::trim(&r[0]).iter().all(|&c| c == b'\r'))
}

fn csv_error(e: &TokenizeError, line_offset: u64) -> RowError {
    let line = e.line() + line_offset;
    let reason = match e {
        TokenizeError::Io { source, .. } => source.to_string(),
        TokenizeError::TooLong { .. } => format!(
            "a record longer than {} bytes (an unclosed quote runs through the rest of the file?)",
            crate::tokenize::MAX_RECORD_BYTES
        ),
        TokenizeError::Unclosed { field, .. } => format!(
            "field {field} opens a quote that is never closed: the rest of the file would be \
             one value (a stray \" at the start of a value?)"
        ),
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
            _ => format!("header that normalises to {:?}", c.name),
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
                    part_slot: None,
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
    check_utf8: bool,
    scratch: &mut Vec<u8>,
    dates: &mut DateCache,
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
            if check_utf8 && std::str::from_utf8(raw).is_err() {
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
        ColumnType::Date => match dates.parse(&p.formats, t) {
            Some(d) => Val::Int(d as i64),
            None => return Err(format!("not a date in {}", show_formats(&p.formats))),
        },
        ColumnType::Timestamp => match p.formats.iter().find_map(|f| f.parse_timestamp_millis(t)) {
            Some(ms) => Val::Int(ms),
            None => return Err(format!("not a timestamp in {}", show_formats(&p.formats))),
        },
    })
}

/// Days a [`DayParts`] table covers, around the first day it learns.
const DAY_SPAN: usize = 1 << 16;

/// The partition of each day, for keys that are the year, month or day of one date or
/// timestamp column: 4 bytes a day over [`DAY_SPAN`] days (about 180 years) around the first
/// day seen, so the days of an export stay in a few kilobytes of cache.
struct DayParts {
    /// Values are milliseconds (a timestamp), else days (a date).
    ms: bool,
    first: i64,
    parts: Vec<u32>,
}

impl DayParts {
    fn new(ms: bool) -> Self {
        Self {
            ms,
            first: 0,
            parts: Vec::new(),
        }
    }

    #[inline]
    fn slot(&self, x: i64) -> Option<usize> {
        let day = if self.ms { x.div_euclid(86_400_000) } else { x };
        let k = day
            .checked_sub(self.first)?
            .checked_add(DAY_SPAN as i64 / 2)?;
        usize::try_from(k).ok().filter(|&k| k < self.parts.len())
    }

    /// The partition of the day of `x`, when known.
    #[inline]
    fn get(&self, x: i64) -> Option<usize> {
        let p = self.parts[self.slot(x)?];
        (p != u32::MAX).then_some(p as usize)
    }

    /// Remembers that the day of `x` goes to partition `i` (days out of the table's span are
    /// looked up by key each time).
    fn set(&mut self, x: i64, i: usize) {
        if self.parts.is_empty() {
            self.first = if self.ms { x.div_euclid(86_400_000) } else { x };
            self.parts = vec![u32::MAX; DAY_SPAN];
        }
        if let Some(k) = self.slot(x) {
            self.parts[k] = i as u32;
        }
    }
}

/// How the parse loop appends a field of a common, unambiguous shape (see [`fast_append`]),
/// decided once per field from its plan: a body column (not a partition source), no null
/// marker but the empty value, no pseudonym, and numbers without a thousands separator.
#[derive(Clone, Copy)]
enum Fast<'a> {
    /// Always by [`parse_value`] and [`append_value`].
    General,
    /// Text into body column `bi` (through its interner when it has one); `trim`: the
    /// contract's `trim_strings`.
    Text {
        bi: usize,
        trim: bool,
        empty_null: bool,
    },
    /// `int` (`wide` false) or `bigint`.
    Int {
        bi: usize,
        wide: bool,
        empty_null: bool,
    },
    Decimal {
        bi: usize,
        decimal: u8,
        precision: u8,
        scale: i8,
        empty_null: bool,
    },
    /// A date in the column's first format, which has a fixed width.
    Date {
        bi: usize,
        format: &'a DateFormat,
        empty_null: bool,
    },
}

impl<'a> Fast<'a> {
    /// The body column of a field that is not [`Fast::General`].
    fn body(&self) -> Option<usize> {
        match *self {
            Fast::General => None,
            Fast::Text { bi, .. }
            | Fast::Int { bi, .. }
            | Fast::Decimal { bi, .. }
            | Fast::Date { bi, .. } => Some(bi),
        }
    }

    fn of(p: &'a FieldPlan, no_thousands: bool, decimal: u8, trim: bool) -> Self {
        let Some(bi) = p.body else {
            return Self::General;
        };
        if p.part_slot.is_some() || !p.only_empty_null || p.pii != Pii::Keep {
            return Self::General;
        }
        let empty_null = !p.nulls.is_empty();
        match p.ty {
            ColumnType::String => Self::Text {
                bi,
                trim,
                empty_null,
            },
            ColumnType::Int | ColumnType::BigInt if no_thousands => Self::Int {
                bi,
                wide: p.ty == ColumnType::BigInt,
                empty_null,
            },
            ColumnType::Decimal { precision, scale } if no_thousands => Self::Decimal {
                bi,
                decimal,
                precision,
                scale,
                empty_null,
            },
            ColumnType::Date => match p.formats.first() {
                Some(format) if format.is_fixed() => Self::Date {
                    bi,
                    format,
                    empty_null,
                },
                _ => Self::General,
            },
            _ => Self::General,
        }
    }
}

/// Appends the value of `raw` to its body column `col` (whose interner is `interner`, if it
/// has one) when the field is [`Fast`] and the value of a common shape (see
/// [`parse::fast_int`], [`parse::fast_decimal`], [`DateFormat::parse_fixed_date`]); returns
/// the text bytes added, or `None` (nothing appended) to leave the value to [`parse_value`].
/// `raw` lies in `base`, with 16 readable bytes after its start.
#[inline(always)]
fn fast_append(
    f: &Fast<'_>,
    base: &[u8],
    raw: &[u8],
    col: &mut Column,
    interner: Option<&mut Interner>,
) -> Option<usize> {
    // An empty value (after trimming) is null when the contract says so, else an error or an
    // empty text, which the general path tells apart.
    macro_rules! value {
        ($empty_null:expr) => {{
            let v = parse::trim(raw);
            if v.is_empty() {
                if !$empty_null {
                    return None;
                }
                col.push_null();
                return Some(0);
            }
            v
        }};
    }
    match *f {
        Fast::General => None,
        Fast::Text {
            trim, empty_null, ..
        } => {
            let v = value!(empty_null);
            let s = if trim { trim_trimmed(v) } else { raw };
            let start = s.as_ptr() as usize - base.as_ptr() as usize;
            if let Some(i) = interner
                && matches!(col.values, Values::Interned { .. })
            {
                return Some(col.push_interned(i, base, start, start + s.len()));
            }
            col.push_text_within(base, start, start + s.len());
            Some(s.len())
        }
        Fast::Int {
            wide, empty_null, ..
        } => {
            let v = value!(empty_null);
            let x = parse::fast_int(v)?;
            if !wide && (x < i32::MIN as i64 || x > i32::MAX as i64) {
                return None;
            }
            col.push_i64(x);
            Some(0)
        }
        Fast::Decimal {
            decimal,
            precision,
            scale,
            empty_null,
            ..
        } => {
            let v = value!(empty_null);
            col.push_i128(parse::fast_decimal(v, decimal, precision, scale)?);
            Some(0)
        }
        Fast::Date {
            format, empty_null, ..
        } => {
            let v = value!(empty_null);
            col.push_i64(format.parse_fixed_date(v)? as i64);
            Some(0)
        }
    }
}

/// What appending a value needs besides the value.
struct RowContext<'a> {
    trim_strings: bool,
    key: Option<&'a PseudonymKey>,
}

/// Strips whitespace around text: ASCII spaces and tabs, and Unicode spaces (a no-break space
/// padding a legacy export) when the ends are not ASCII.
fn trim_text(raw: &[u8]) -> &[u8] {
    trim_trimmed(parse::trim(raw))
}

/// [`trim_text`] of a value [`parse::trim`] has trimmed.
#[inline]
fn trim_trimmed(t: &[u8]) -> &[u8] {
    let non_ascii_end =
        t.first().is_some_and(|b| !b.is_ascii()) || t.last().is_some_and(|b| !b.is_ascii());
    if non_ascii_end && let Ok(s) = std::str::from_utf8(t) {
        return s.trim().as_bytes();
    }
    t
}

/// Appends a parsed value to its body column, applying the column's pseudonymisation; returns
/// the text bytes added (for the memory count).
#[allow(clippy::too_many_arguments)]
fn append_value(
    col: &mut Column,
    p: &FieldPlan,
    v: Val,
    raw: &[u8],
    base: &[u8],
    ctx: &RowContext<'_>,
    text_buf: &mut String,
) -> usize {
    match v {
        Val::Null => {
            col.push_null();
            0
        }
        Val::Int(x) => {
            if p.pii == Pii::Year {
                let days = if p.ty == ColumnType::Timestamp {
                    x.div_euclid(86_400_000)
                } else {
                    x
                };
                col.push_i64(datefmt::civil_from_days(days as i32).0 as i64);
            } else {
                col.push_i64(x);
            }
            0
        }
        Val::F64(x) => {
            col.push_f64(x);
            0
        }
        Val::Dec(x) => {
            col.push_i128(x);
            0
        }
        Val::Bool(x) => {
            col.push_bool(x);
            0
        }
        Val::Str(_) => {
            let s = if ctx.trim_strings {
                trim_text(raw)
            } else {
                raw
            };
            match p.pii {
                Pii::Hmac => {
                    text_buf.clear();
                    if let Some(k) = ctx.key {
                        k.pseudonym_into(s, text_buf);
                    }
                    col.push_text(text_buf.as_bytes());
                    text_buf.len()
                }
                Pii::Truncate(n) => {
                    // parse_value checked the field (or its record) is UTF-8
                    let t = std::str::from_utf8(s)
                        .map_or(s, |st| pii::truncate_chars(st, n).as_bytes());
                    col.push_text(t);
                    t.len()
                }
                _ => {
                    // `s` lies inside the record's buffer: copy it from there
                    let start = s.as_ptr() as usize - base.as_ptr() as usize;
                    col.push_text_within(base, start, start + s.len());
                    s.len()
                }
            }
        }
    }
}

/// Appends the binary partition key of one value to `buf` (what tells partitions apart; the
/// folder name is made once per partition by [`push_partition_value`]).
fn push_partition_key<'r>(
    buf: &mut Vec<u8>,
    t: Transform,
    ty: ColumnType,
    v: Val,
    field: &impl Fn(usize) -> &'r [u8],
) {
    let days = |x: i64| {
        if ty == ColumnType::Timestamp {
            x.div_euclid(86_400_000) as i32
        } else {
            x as i32
        }
    };
    match (t, v) {
        (_, Val::Null) => buf.push(0),
        (Transform::Identity, Val::Str(i)) => {
            // the same text as the folder name: see push_partition_value
            let s = std::str::from_utf8(field(i))
                .unwrap_or_default()
                .trim()
                .as_bytes();
            buf.push(1);
            buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
            buf.extend_from_slice(s);
        }
        (Transform::Year, Val::Int(x)) => {
            buf.push(1);
            buf.extend_from_slice(&datefmt::civil_from_days(days(x)).0.to_le_bytes());
        }
        (Transform::Month, Val::Int(x)) => {
            buf.push(1);
            buf.push(datefmt::civil_from_days(days(x)).1 as u8);
        }
        (Transform::Day, Val::Int(x)) => {
            buf.push(1);
            buf.push(datefmt::civil_from_days(days(x)).2 as u8);
        }
        _ => unreachable!("partition transforms were validated against column types"),
    }
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

fn push_partition_value<'r>(
    buf: &mut String,
    t: Transform,
    ty: ColumnType,
    v: Val,
    field: &impl Fn(usize) -> &'r [u8],
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
            let s = std::str::from_utf8(field(i)).unwrap_or_default();
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
    record: &Record,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_table_answers_by_day_within_its_span() {
        // dates: days since 1970
        let mut d = DayParts::new(false);
        assert_eq!(d.get(19_000), None, "empty");
        d.set(19_000, 3);
        d.set(19_001, 4);
        assert_eq!(
            (d.get(19_000), d.get(19_001), d.get(19_002)),
            (Some(3), Some(4), None)
        );
        // far outside the span: never answered, never stored
        let far = 19_000 + DAY_SPAN as i64;
        d.set(far, 5);
        assert_eq!(d.get(far), None);
        assert_eq!(d.get(19_000 - DAY_SPAN as i64), None);
        assert_eq!(d.get(i64::MIN), None);
        assert_eq!(d.get(i64::MAX), None);

        // timestamps: every millisecond of a day is that day, before 1970 too
        let day = 86_400_000i64;
        let mut t = DayParts::new(true);
        t.set(-1, 7); // 1969-12-31 23:59:59.999
        assert_eq!(t.get(-day), Some(7), "1969-12-31 00:00");
        assert_eq!(t.get(0), None, "1970-01-01 is another day");
        t.set(day * 20_000 + 5, 8);
        assert_eq!(t.get(day * 20_000), Some(8));
        assert_eq!(t.get(day * 20_001 - 1), Some(8));
        assert_eq!(t.get(i64::MIN), None);
    }
}
