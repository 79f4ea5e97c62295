//! Parquet files of partitions: writer properties, row-group and file rolling, output hashing.
//!
//! Owns how record batches routed to Hive partitions become `part-*.parquet` files of bounded
//! size with large, bounded row groups, zstd or snappy, chunk statistics and a SHA-256 of every
//! byte written; which columns are dictionary-encoded; and the [`Encoder`] that decides, batch
//! by batch, whether rows join an open row group or wait in the spill for the end. An open row
//! group costs a page buffer and a compressor per column, so only a few are open at once, and
//! their finished pages wait in a [`SpillArena`]. Files are opened only while bytes are written
//! to them, so thousands of partitions never exhaust file handles. It does not decide partitions
//! or parse CSV.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use rustc_hash::FxHashSet;
use sha2::{Digest, Sha256};

use crate::columns::{BatchBuilder, Values};
use crate::contract::{Compression, OutputSettings};
use crate::spill::{RowSpill, Segment, SpillArena};

/// Uncompressed size at which a data page is closed. Small pages keep the memory of many open
/// row groups low (each column of each open partition buffers up to one page) and cost little
/// compression with zstd.
pub const DATA_PAGE_BYTES: usize = 256 * 1024;
/// A dictionary larger than this falls back to plain encoding for the rest of the chunk.
pub const DICTIONARY_PAGE_BYTES: usize = 256 * 1024;
/// Values per page at most (dictionary indices are buffered unencoded until the page closes).
pub const DATA_PAGE_ROWS: usize = 20_000;
/// Values the writer encodes at a time.
const WRITE_BATCH_ROWS: usize = 8192;

/// Writes to a file that is open only while bytes flow: `flush` closes it, the next `write`
/// reopens it for appending. Hashes and counts every byte.
pub struct ParkingFile {
    path: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    bytes: u64,
}

impl ParkingFile {
    fn create(path: PathBuf) -> io::Result<Self> {
        File::create(&path)?;
        Ok(Self {
            path,
            file: None,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }
}

impl Write for ParkingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.file.is_none() {
            self.file = Some(File::options().append(true).open(&self.path)?);
        }
        let Some(f) = self.file.as_mut() else {
            unreachable!("opened above")
        };
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file = None;
        Ok(())
    }
}

/// One finished Parquet file.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// Where it is now (staging).
    pub path: PathBuf,
    /// 0-based sequence number within its partition.
    pub seq: u32,
    pub bytes: u64,
    pub rows: u64,
    pub row_groups: usize,
    pub sha256: String,
}

/// Columns where a dictionary would not pay: at least this many values sampled, and more than
/// half of them distinct.
const DICTIONARY_SAMPLE_MIN: usize = 256;
/// How many values of each column the dictionary decision looks at.
pub const DICTIONARY_SAMPLE_ROWS: usize = 8192;

/// Decides per column whether dictionary encoding pays, from the first rows of the file (spread
/// over the partitions they went to): a column whose sampled values are mostly distinct (ids,
/// amounts, free text) is written plain, which is smaller once compressed and much cheaper to
/// encode. Deterministic: the same file always gives the same decision.
pub fn plain_columns<'a>(
    schema: &SchemaRef,
    buffers: impl Iterator<Item = &'a BatchBuilder> + Clone,
) -> Vec<String> {
    let mut plain = Vec::new();
    for (ci, field) in schema.fields().iter().enumerate() {
        let mut seen = 0usize;
        let mut distinct: FxHashSet<&[u8]> = FxHashSet::default();
        let mut distinct_num: FxHashSet<u128> = FxHashSet::default();
        'parts: for b in buffers.clone() {
            let Some(col) = b.cols.get(ci) else { continue };
            for i in 0..col.len() {
                if seen >= DICTIONARY_SAMPLE_ROWS {
                    break 'parts;
                }
                if col.is_null(i) {
                    continue;
                }
                seen += 1;
                match &col.values {
                    Values::Text { offsets, data } => {
                        distinct.insert(&data[offsets[i] as usize..offsets[i + 1] as usize]);
                    }
                    Values::I32(v) => {
                        distinct_num.insert(v[i] as u32 as u128);
                    }
                    Values::I64(v) => {
                        distinct_num.insert(v[i] as u64 as u128);
                    }
                    Values::F64(v) => {
                        distinct_num.insert(v[i].to_bits() as u128);
                    }
                    Values::I128(v) => {
                        distinct_num.insert(v[i] as u128);
                    }
                    Values::Bool(_) => {}
                }
            }
        }
        let d = distinct.len() + distinct_num.len();
        if seen >= DICTIONARY_SAMPLE_MIN && d * 2 > seen {
            plain.push(field.name().clone());
        }
    }
    plain
}

/// Parquet writer settings shared by every file of a table.
pub fn writer_properties(
    out: &OutputSettings,
    metadata: Vec<KeyValue>,
    no_dictionary: &[String],
) -> Result<WriterProperties, String> {
    let compression = match out.compression {
        Compression::Zstd(level) => {
            PqCompression::ZSTD(ZstdLevel::try_new(level).map_err(|e| e.to_string())?)
        }
        Compression::Snappy => PqCompression::SNAPPY,
    };
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(compression)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_dictionary_enabled(true)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_data_page_size_limit(DATA_PAGE_BYTES)
        .set_data_page_row_count_limit(DATA_PAGE_ROWS)
        .set_write_batch_size(WRITE_BATCH_ROWS)
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        .set_created_by(format!("lakemesh-agent {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(metadata));
    for c in no_dictionary {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c.as_str()), false);
    }
    Ok(b.build())
}

/// Settings every partition writer of one table shares.
#[derive(Clone)]
pub struct TableWriterSettings {
    pub schema: SchemaRef,
    pub props: WriterProperties,
    pub row_group_bytes: u64,
    pub target_file_bytes: u64,
}

impl TableWriterSettings {
    pub fn new(schema: SchemaRef, props: WriterProperties, out: &OutputSettings) -> Self {
        Self {
            schema,
            props,
            row_group_bytes: out.row_group_bytes,
            target_file_bytes: out.target_file_bytes,
        }
    }
}

struct OpenFile {
    writer: ArrowWriter<ParkingFile>,
    path: PathBuf,
    rows: u64,
}

/// The files of one partition, rolled by size.
pub struct PartitionWriter {
    dir: PathBuf,
    settings: Arc<TableWriterSettings>,
    arena: SpillArena,
    current: Option<OpenFile>,
    next_seq: u32,
    pub files: Vec<WrittenFile>,
}

impl PartitionWriter {
    pub fn new(dir: PathBuf, settings: Arc<TableWriterSettings>, arena: SpillArena) -> Self {
        Self {
            dir,
            settings,
            arena,
            current: None,
            next_seq: 0,
            files: Vec::new(),
        }
    }

    fn open(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("part-{}.parquet.tmp", self.next_seq));
        let options = ArrowWriterOptions::new()
            .with_properties(self.settings.props.clone())
            .with_page_store_factory(Arc::new(self.arena.clone()));
        // The magic bytes wait in the writer's buffer: the file is opened when a row group ends.
        let writer = ArrowWriter::try_new_with_options(
            ParkingFile::create(path.clone())?,
            self.settings.schema.clone(),
            options,
        )
        .map_err(io::Error::other)?;
        self.current = Some(OpenFile {
            writer,
            path,
            rows: 0,
        });
        Ok(())
    }

    /// Appends a batch; closes the row group above the row-group size and the file above the
    /// target size.
    pub fn write(&mut self, batch: &RecordBatch) -> io::Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.current.is_none() {
            self.open()?;
        }
        let Some(f) = self.current.as_mut() else {
            unreachable!("opened above")
        };
        f.writer.write(batch).map_err(io::Error::other)?;
        f.rows += batch.num_rows() as u64;
        if f.writer.in_progress_size() as u64 >= self.settings.row_group_bytes {
            self.end_row_group()?;
        }
        Ok(())
    }

    /// Whether a row group is open (rows written but not yet flushed to the file).
    pub fn has_open_row_group(&self) -> bool {
        self.in_progress_rows() > 0
    }

    /// Rows of the open row group.
    pub fn in_progress_rows(&self) -> usize {
        self.current
            .as_ref()
            .map_or(0, |f| f.writer.in_progress_rows())
    }

    /// Ends the open row group (if any), parks the file, and rolls it when it reached its
    /// target size.
    pub fn end_row_group(&mut self) -> io::Result<()> {
        let Some(f) = self.current.as_mut() else {
            return Ok(());
        };
        if f.writer.in_progress_rows() == 0 {
            return Ok(());
        }
        f.writer.flush().map_err(io::Error::other)?;
        f.writer.sync()?;
        if f.writer.bytes_written() as u64 >= self.settings.target_file_bytes {
            self.close_file()?;
        }
        Ok(())
    }

    fn close_file(&mut self) -> io::Result<()> {
        let Some(OpenFile {
            mut writer,
            path,
            rows,
        }) = self.current.take()
        else {
            return Ok(());
        };
        writer.flush().map_err(io::Error::other)?;
        let row_groups = writer.flushed_row_groups().len();
        // writes the footer
        let pf = writer.into_inner().map_err(io::Error::other)?;
        File::open(&pf.path)?.sync_all()?;
        self.files.push(WrittenFile {
            path,
            seq: self.next_seq,
            bytes: pf.bytes,
            rows,
            row_groups,
            sha256: hex::encode(pf.hasher.finalize()),
        });
        self.next_seq += 1;
        Ok(())
    }

    /// Closes the last file; with `ensure_one`, writes an empty file when nothing was written
    /// (a table with zero rows is still a valid, typed table).
    pub fn finish(mut self, ensure_one: bool) -> io::Result<Vec<WrittenFile>> {
        if self.current.is_none() && self.files.is_empty() && ensure_one {
            self.open()?;
        }
        self.close_file()?;
        Ok(self.files)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Why an encoder failed: the partition folder and what happened.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", .dir.display())]
pub struct EncodeError {
    pub dir: PathBuf,
    pub source: io::Error,
}

/// Whether a buffer of rows is worth a row group of its own (else it waits in the spill).
pub fn is_big(rows: usize, bytes: usize) -> bool {
    rows >= MIN_ROW_GROUP_ROWS || bytes >= MIN_ROW_GROUP_BYTES
}

/// Rows at which a partition's buffer makes a row group (or joins its open one).
pub const MIN_ROW_GROUP_ROWS: usize = 65_536;
/// Bytes at which a partition's buffer makes a row group, however few its rows.
pub const MIN_ROW_GROUP_BYTES: usize = 16 * 1024 * 1024;
/// Row groups an encoder keeps open at once (each holds a page and a compressor per column).
const MAX_OPEN_ROW_GROUPS: usize = 2;

/// The encoding side of one partition: its files, and the rows it set aside.
pub struct PartState {
    writer: PartitionWriter,
    segments: Vec<Segment>,
}

impl PartState {
    /// A partition that has not been written to yet, with files under `dir`.
    pub fn new(dir: PathBuf, settings: Arc<TableWriterSettings>, arena: SpillArena) -> Self {
        Self {
            writer: PartitionWriter::new(dir, settings, arena),
            segments: Vec::new(),
        }
    }

    /// Writes the set-aside rows, then `rest`, and closes the files (`ensure_one`: an empty
    /// file when there is nothing).
    pub fn finish(
        mut self,
        spill: &RowSpill,
        rest: Option<&RecordBatch>,
        ensure_one: bool,
    ) -> Result<Vec<WrittenFile>, EncodeError> {
        let dir = self.writer.dir().to_path_buf();
        let fail = |source| EncodeError {
            dir: dir.clone(),
            source,
        };
        for seg in std::mem::take(&mut self.segments) {
            let b = spill.read(seg).map_err(|e| fail(io::Error::other(e)))?;
            self.writer.write(&b).map_err(fail)?;
        }
        if let Some(b) = rest {
            self.writer.write(b).map_err(fail)?;
        }
        self.writer.finish(ensure_one).map_err(fail)
    }

    /// Rows set aside or open (to schedule the largest partitions first).
    pub fn weight(&self) -> usize {
        self.segments.iter().map(|s| s.bytes()).sum::<usize>() + self.writer.in_progress_rows() * 64
    }
}

/// The partitions one thread encodes while the file is read.
///
/// A batch of a partition whose row group is open joins it; a large batch (sorted exports send
/// a month at a time) opens a row group, first writing what the partition set aside so its rows
/// keep their order; a small batch (a month whose rows are spread over the whole file) is set
/// aside in the [`RowSpill`] until the end, when each partition is written as one row group.
/// At most [`MAX_OPEN_ROW_GROUPS`] row groups are open at once: the least recently fed is closed
/// to open another.
pub struct Encoder {
    settings: Arc<TableWriterSettings>,
    staging: PathBuf,
    arena: SpillArena,
    spill: Arc<RowSpill>,
    parts: Vec<Option<PartState>>,
    open: VecDeque<usize>,
}

impl Encoder {
    pub fn new(
        settings: Arc<TableWriterSettings>,
        staging: PathBuf,
        arena: SpillArena,
        spill: Arc<RowSpill>,
    ) -> Self {
        Self {
            settings,
            staging,
            arena,
            spill,
            parts: Vec::new(),
            open: VecDeque::new(),
        }
    }

    fn slot(&mut self, id: usize, dir: &str) -> &mut PartState {
        if self.parts.len() <= id {
            self.parts.resize_with(id + 1, || None);
        }
        let (settings, arena, staging) = (&self.settings, &self.arena, &self.staging);
        self.parts[id].get_or_insert_with(|| {
            let mut path = staging.join("data");
            if !dir.is_empty() {
                path.push(dir);
            }
            PartState::new(path, settings.clone(), arena.clone())
        })
    }

    /// Takes rows of partition `id` (files under `staging/data/{dir}`).
    pub fn write(&mut self, id: usize, dir: &str, batch: &RecordBatch) -> Result<(), EncodeError> {
        let big = is_big(batch.num_rows(), batch.get_array_memory_size());
        let open = self.slot(id, dir).writer.has_open_row_group();
        if !open && !big {
            let seg = self.spill.append(batch).map_err(|e| EncodeError {
                dir: self.staging.join("data").join(dir),
                source: io::Error::other(e),
            })?;
            self.slot(id, dir).segments.push(seg);
            return Ok(());
        }
        if !open {
            while self.open.len() >= MAX_OPEN_ROW_GROUPS {
                let Some(old) = self.open.pop_front() else {
                    break;
                };
                if let Some(Some(p)) = self.parts.get_mut(old) {
                    p.writer.end_row_group().map_err(|source| EncodeError {
                        dir: p.writer.dir().to_path_buf(),
                        source,
                    })?;
                }
            }
        }
        self.open.retain(|&i| i != id);
        let spill = self.spill.clone();
        let p = self.slot(id, dir);
        let fail = |p: &PartState, source| EncodeError {
            dir: p.writer.dir().to_path_buf(),
            source,
        };
        for seg in std::mem::take(&mut p.segments) {
            let b = spill.read(seg).map_err(|e| fail(p, io::Error::other(e)))?;
            p.writer.write(&b).map_err(|e| fail(p, e))?;
        }
        p.writer.write(batch).map_err(|e| fail(p, e))?;
        if p.writer.has_open_row_group() {
            self.open.push_back(id);
        }
        Ok(())
    }

    /// Every partition's state, by id, to be finished (possibly by other threads).
    pub fn into_parts(self) -> Vec<(usize, PartState)> {
        self.parts
            .into_iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|p| (i, p)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::body_schema;
    use crate::contract::ColumnType;

    #[test]
    fn mostly_distinct_columns_are_written_plain() {
        let types = [
            ColumnType::String,
            ColumnType::String,
            ColumnType::BigInt,
            ColumnType::Date,
        ];
        let schema = body_schema(&[
            ("id_text".into(), ColumnType::String, "a".into()),
            ("code".into(), ColumnType::String, "b".into()),
            ("n".into(), ColumnType::BigInt, "c".into()),
            ("day".into(), ColumnType::Date, "d".into()),
        ]);
        let mut parts = [BatchBuilder::new(&types), BatchBuilder::new(&types)];
        for i in 0..3000i64 {
            let b = &mut parts[(i % 2) as usize];
            b.cols[0].push_text(format!("P{i:08}").as_bytes());
            b.cols[1].push_text(["01", "2A", "976"][(i % 3) as usize].as_bytes());
            b.cols[2].push_i64(i * 7);
            if i % 10 == 0 {
                b.cols[3].push_null();
            } else {
                b.cols[3].push_i64(19_000 + i % 30);
            }
            b.rows += 1;
        }
        assert_eq!(plain_columns(&schema, parts.iter()), ["id_text", "n"]);
        // too few values to judge: dictionary everywhere
        let few = [BatchBuilder::new(&types)];
        assert!(plain_columns(&schema, few.iter()).is_empty());
    }
}
