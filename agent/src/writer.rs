//! Parquet files of partitions: writer properties, row-group and file rolling, output hashing.
//!
//! Owns how the rows routed to Hive partitions become `part-*.parquet` files of bounded size
//! with large, bounded row groups, zstd or snappy, chunk statistics and a SHA-256 of every byte
//! written; which columns are dictionary-encoded; and the [`Encoder`] that turns each batch of a
//! partition into pages of its open row group at once ([`crate::chunk`]), or sets a small one
//! aside until the partition is written. An open row group costs its dictionaries and page list
//! only (the pages wait, compressed, in a [`SpillArena`]), so up to a hundred or so partitions
//! keep one open until the end and each becomes one row group, however its rows are spread over
//! the export. Files are opened only while bytes are written to them, so thousands of
//! partitions never exhaust file handles. It does not decide partitions or parse CSV.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use parquet::arrow::{ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata};
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{ColumnPath, SchemaDescriptor};
use rustc_hash::FxHashSet;
use sha2::{Digest, Sha256};

use crate::chunk::{ChunkWriter, Compressor};
use crate::columns::{BatchBuilder, PRIVATE, Values, text_entry};
use crate::contract::{Compression, OutputSettings};
use crate::spill::{RowSpill, Segment, SpillArena};

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
                    // an interner's numbers stand for distinct values; the buffer's own
                    // entries and a batch's entries are looked at as text
                    Values::Interned { ids, offsets, data } if ids[i] & PRIVATE != 0 => {
                        distinct.insert(text_entry(offsets, data, ids[i] & !PRIVATE));
                    }
                    Values::Interned { ids, .. } => {
                        distinct_num.insert(ids[i] as u128);
                    }
                    Values::Dict { ids, offsets, data } => {
                        distinct.insert(text_entry(offsets, data, ids[i]));
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
pub struct TableWriterSettings {
    pub props: Arc<WriterProperties>,
    pub parquet: SchemaDescriptor,
    /// Per column: whether a dictionary is tried.
    pub dictionary: Vec<bool>,
    pub codec: PqCompression,
    pub row_group_bytes: u64,
    pub target_file_bytes: u64,
}

impl TableWriterSettings {
    /// Settings for `schema` (its Arrow form is kept in the files' metadata, as readers expect).
    pub fn new(
        schema: SchemaRef,
        mut props: WriterProperties,
        out: &OutputSettings,
    ) -> Result<Self, String> {
        let parquet = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(&schema)
            .map_err(|e| e.to_string())?;
        add_encoded_arrow_schema_to_metadata(&schema, &mut props);
        let dictionary = (0..parquet.num_columns())
            .map(|i| props.dictionary_enabled(parquet.column(i).path()))
            .collect();
        let codec = props.compression(&ColumnPath::from(""));
        Ok(Self {
            props: Arc::new(props),
            parquet,
            dictionary,
            codec,
            row_group_bytes: out.row_group_bytes,
            target_file_bytes: out.target_file_bytes,
        })
    }
}

struct OpenFile {
    writer: SerializedFileWriter<ParkingFile>,
    path: PathBuf,
    rows: u64,
}

/// The files of one partition, rolled by size, and its open row group.
pub struct PartitionWriter {
    dir: PathBuf,
    settings: Arc<TableWriterSettings>,
    arena: SpillArena,
    chunks: Vec<ChunkWriter>,
    rows: u64,
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
            chunks: Vec::new(),
            rows: 0,
            current: None,
            next_seq: 0,
            files: Vec::new(),
        }
    }

    fn open(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("part-{}.parquet.tmp", self.next_seq));
        // The magic bytes wait in the writer's buffer: the file is opened when a row group ends.
        let writer = SerializedFileWriter::new(
            ParkingFile::create(path.clone())?,
            self.settings.parquet.root_schema_ptr(),
            self.settings.props.clone(),
        )
        .map_err(io::Error::other)?;
        self.current = Some(OpenFile {
            writer,
            path,
            rows: 0,
        });
        Ok(())
    }

    /// Appends a batch to the open row group (as pages); ends the row group above the row-group
    /// size.
    pub fn write(&mut self, batch: &BatchBuilder, comp: &mut Compressor) -> io::Result<()> {
        if batch.rows == 0 {
            return Ok(());
        }
        if self.chunks.is_empty() {
            let s = &self.settings;
            for (i, col) in batch.cols.iter().enumerate() {
                let chunk = ChunkWriter::new(
                    s.parquet.column(i),
                    &col.values,
                    s.codec,
                    s.dictionary[i],
                    &self.arena,
                )
                .map_err(io::Error::other)?;
                self.chunks.push(chunk);
            }
        }
        for (chunk, col) in self.chunks.iter_mut().zip(&batch.cols) {
            chunk.write(col, comp).map_err(io::Error::other)?;
        }
        self.rows += batch.rows as u64;
        let size: u64 = self
            .chunks
            .iter()
            .map(ChunkWriter::uncompressed_bytes)
            .sum();
        if size >= self.settings.row_group_bytes {
            self.end_row_group(comp)?;
        }
        Ok(())
    }

    /// Whether a row group is open.
    pub fn has_open_row_group(&self) -> bool {
        !self.chunks.is_empty()
    }

    /// Writes the open row group (if any) to the file, parks the file, and rolls it when it
    /// reached its target size.
    pub fn end_row_group(&mut self, comp: &mut Compressor) -> io::Result<()> {
        if self.chunks.is_empty() {
            return Ok(());
        }
        if self.current.is_none() {
            self.open()?;
        }
        let Some(f) = self.current.as_mut() else {
            unreachable!("opened above")
        };
        let mut rg = f.writer.next_row_group().map_err(io::Error::other)?;
        for chunk in self.chunks.drain(..) {
            let (bytes, close) = chunk.finish(comp).map_err(io::Error::other)?;
            rg.append_column(&bytes, close).map_err(io::Error::other)?;
        }
        rg.close().map_err(io::Error::other)?;
        f.rows += self.rows;
        self.rows = 0;
        f.writer.flush()?;
        if f.writer.bytes_written() as u64 >= self.settings.target_file_bytes {
            self.close_file()?;
        }
        Ok(())
    }

    fn close_file(&mut self) -> io::Result<()> {
        let Some(OpenFile { writer, path, rows }) = self.current.take() else {
            return Ok(());
        };
        let row_groups = writer.flushed_row_groups().len();
        // writes the footer
        let mut pf = writer.into_inner().map_err(io::Error::other)?;
        pf.flush()?;
        start_writeback(&pf.path)?;
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

    /// Writes the open row group and closes the last file; with `ensure_one`, writes an empty
    /// file when nothing was written (a table with zero rows is still a valid, typed table).
    /// The files are on their way to the disk, not yet durable: see [`sync_files`].
    pub fn finish(
        mut self,
        comp: &mut Compressor,
        ensure_one: bool,
    ) -> io::Result<Vec<WrittenFile>> {
        self.end_row_group(comp)?;
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

/// Asks the kernel to start writing `path` out without waiting (Linux), so that the fsyncs of
/// [`sync_files`] at the end find the data mostly on disk instead of writing one file after the
/// other; elsewhere, an fsync now.
#[allow(unsafe_code)] // one syscall that `std` and `rustix` do not wrap
fn start_writeback(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a file descriptor `f` owns for the duration of the call.
        let rc = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        if rc == 0 {
            return Ok(());
        }
        // not supported here (some file systems): the fsync below does it
    }
    f.sync_all()
}

/// Makes written files durable (fsync), before they are moved into place.
pub fn sync_files<'a>(files: impl IntoIterator<Item = &'a WrittenFile>) -> io::Result<()> {
    for f in files {
        File::open(&f.path)?.sync_all()?;
    }
    Ok(())
}

/// Why an encoder failed: the partition folder and what happened.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", .dir.display())]
pub struct EncodeError {
    pub dir: PathBuf,
    pub source: io::Error,
}

/// Whether a buffer of rows is worth handing to the encoder before the budget forces it.
pub fn is_big(rows: usize, bytes: usize) -> bool {
    rows >= MIN_ROW_GROUP_ROWS || bytes >= MIN_ROW_GROUP_BYTES
}

/// Rows at which a partition's buffer is encoded without waiting for the budget.
pub const MIN_ROW_GROUP_ROWS: usize = 65_536;
/// Bytes at which a partition's buffer is encoded, however few its rows.
pub const MIN_ROW_GROUP_BYTES: usize = 16 * 1024 * 1024;
/// A batch of fewer rows for a partition without an open row group is set aside in the row
/// spill rather than cut into pages of its own (thousands of partitions under a small budget):
/// the partition's set-aside rows are written together, later.
pub const SPILL_ROWS: usize = 1024;
/// Rows of set-aside batches written at a time when they are read back.
const MERGE_ROWS: usize = 65_536;
/// Bytes (allocated) at which set-aside rows read back are written, however few: the batches
/// of long records (10 MB notes) stay far from the 2 GiB a text column's 32-bit offsets reach.
const MERGE_BYTES: usize = 64 * 1024 * 1024;

/// Whether a batch of `rows` for a partition opens a row group (else it is set aside), for the
/// router and the encoders alike.
pub fn opens_row_group(rows: usize) -> bool {
    rows >= SPILL_ROWS
}

/// The encoding side of one partition: its files and open row group, and the batches it set
/// aside.
struct PartState {
    writer: PartitionWriter,
    segments: Vec<Segment>,
}

/// The partitions one thread encodes. A batch of a partition with an open row group, or one large
/// enough to open it, becomes pages of that row group at once (after the batches the partition
/// set aside, so that rows keep their order), with this thread's one compressor; a small batch of
/// a partition without one waits in the [`RowSpill`]. The router closes row groups beyond the
/// number it keeps open (least recently fed first), so the decisions, hence the files, do not
/// depend on how many threads encode.
pub struct Encoder {
    settings: Arc<TableWriterSettings>,
    staging: PathBuf,
    arena: SpillArena,
    spill: Arc<RowSpill>,
    types: Vec<crate::contract::ColumnType>,
    comp: Compressor,
    parts: Vec<Option<PartState>>,
    scratch: Vec<u8>,
}

impl Encoder {
    pub fn new(
        settings: Arc<TableWriterSettings>,
        staging: PathBuf,
        arena: SpillArena,
        spill: Arc<RowSpill>,
        types: Vec<crate::contract::ColumnType>,
    ) -> Result<Self, EncodeError> {
        let comp = Compressor::new(settings.codec).map_err(|e| EncodeError {
            dir: staging.clone(),
            source: io::Error::other(e),
        })?;
        Ok(Self {
            settings,
            staging,
            arena,
            spill,
            types,
            comp,
            parts: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// Takes rows of partition `id` (files under `staging/data/{dir}`).
    pub fn write(&mut self, id: usize, dir: &str, batch: &BatchBuilder) -> Result<(), EncodeError> {
        if self.parts.len() <= id {
            self.parts.resize_with(id + 1, || None);
        }
        let (settings, arena, staging) = (&self.settings, &self.arena, &self.staging);
        let p = self.parts[id].get_or_insert_with(|| PartState {
            writer: PartitionWriter::new(
                partition_dir(staging, dir),
                settings.clone(),
                arena.clone(),
            ),
            segments: Vec::new(),
        });
        let fail = |p: &PartState, source| EncodeError {
            dir: p.writer.dir().to_path_buf(),
            source,
        };
        if !p.writer.has_open_row_group() && !opens_row_group(batch.rows) {
            self.scratch.clear();
            batch.encode_into(&mut self.scratch);
            let seg = self
                .spill
                .append(&self.scratch)
                .map_err(|e| fail(p, io::Error::other(e)))?;
            p.segments.push(seg);
            return Ok(());
        }
        drain(
            p,
            &self.spill,
            &self.types,
            &mut self.scratch,
            &mut self.comp,
        )
        .map_err(|e| fail(p, e))?;
        p.writer
            .write(batch, &mut self.comp)
            .map_err(|e| fail(p, e))
    }

    /// Writes partition `id`'s open row group now (the router keeps it open no longer).
    pub fn close(&mut self, id: usize) -> Result<(), EncodeError> {
        if let Some(Some(p)) = self.parts.get_mut(id) {
            p.writer
                .end_row_group(&mut self.comp)
                .map_err(|source| EncodeError {
                    dir: p.writer.dir().to_path_buf(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Writes every partition's set-aside rows and open row group and closes its files; returns
    /// the files by partition id.
    pub fn finish(mut self) -> Result<Vec<(usize, Vec<WrittenFile>)>, EncodeError> {
        let mut out = Vec::new();
        for (i, p) in std::mem::take(&mut self.parts).into_iter().enumerate() {
            let Some(mut p) = p else { continue };
            let dir = p.writer.dir().to_path_buf();
            let fail = |source| EncodeError {
                dir: dir.clone(),
                source,
            };
            drain(
                &mut p,
                &self.spill,
                &self.types,
                &mut self.scratch,
                &mut self.comp,
            )
            .map_err(fail)?;
            let files = p.writer.finish(&mut self.comp, false).map_err(fail)?;
            out.push((i, files));
        }
        // every file at the end: their writeback started as each was closed
        for (_, files) in &out {
            for f in files {
                sync_files([f]).map_err(|source| EncodeError {
                    dir: f.path.parent().map(Path::to_path_buf).unwrap_or_default(),
                    source,
                })?;
            }
        }
        Ok(out)
    }
}

/// Writes the batches partition `p` set aside, in order, merged into large batches.
fn drain(
    p: &mut PartState,
    spill: &RowSpill,
    types: &[crate::contract::ColumnType],
    scratch: &mut Vec<u8>,
    comp: &mut Compressor,
) -> io::Result<()> {
    if p.segments.is_empty() {
        return Ok(());
    }
    let mut merged = BatchBuilder::new(types);
    for seg in std::mem::take(&mut p.segments) {
        spill.read(seg, scratch).map_err(io::Error::other)?;
        if !merged.decode_append(scratch) {
            return Err(io::Error::other(
                "a batch read back from the row spill is damaged",
            ));
        }
        if merged.rows >= MERGE_ROWS || merged.allocated_bytes() >= MERGE_BYTES {
            p.writer.write(&merged, comp)?;
            merged = BatchBuilder::new(types);
        }
    }
    p.writer.write(&merged, comp)
}

/// Where the files of partition folder `dir` are staged.
pub fn partition_dir(staging: &Path, dir: &str) -> PathBuf {
    let mut path = staging.join("data");
    if !dir.is_empty() {
        path.push(dir);
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::body_schema;
    use crate::contract::ColumnType;
    use arrow_array::{Array, RecordBatch};

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

    thread_local! {
        /// The pages of the file [`round_trip`] read last: column, type, encoding.
        static PAGES: std::cell::RefCell<Vec<(usize, parquet::basic::PageType, parquet::basic::Encoding)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Settings for `schema` with files and row groups that never roll, `plain` columns without
    /// a dictionary.
    fn settings_for(
        schema: &SchemaRef,
        compression: Compression,
        plain: &[String],
    ) -> Arc<TableWriterSettings> {
        let out = OutputSettings {
            compression,
            target_file_bytes: 1 << 40,
            row_group_bytes: 1 << 40,
        };
        let props = writer_properties(&out, Vec::new(), plain).unwrap();
        Arc::new(TableWriterSettings::new(schema.clone(), props, &out).unwrap())
    }

    /// Writes `batches` as one partition with every column dictionary-encoded where allowed
    /// (`dictionary`), reads the file back with the parquet crate's Arrow reader.
    fn round_trip(
        types: &[ColumnType],
        batches: &mut [BatchBuilder],
        dictionary: bool,
        compression: Compression,
    ) -> (RecordBatch, parquet::file::metadata::ParquetMetaData) {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let (bytes, schema) = write_partition(types, batches, dictionary, compression);
        // every data page of every chunk, by encoding (a test of its own asks which)
        {
            use parquet::file::reader::{FileReader, SerializedFileReader};
            let r = SerializedFileReader::new(bytes.clone()).unwrap();
            let mut seen = Vec::new();
            for g in 0..r.num_row_groups() {
                let rg = r.get_row_group(g).unwrap();
                for c in 0..rg.num_columns() {
                    for page in rg.get_column_page_reader(c).unwrap() {
                        let page = page.unwrap();
                        seen.push((c, page.page_type(), page.encoding()));
                    }
                }
            }
            PAGES.with(|p| *p.borrow_mut() = seen);
        }
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let meta = builder.metadata().as_ref().clone();
        assert_eq!(
            builder.schema().fields(),
            schema.fields(),
            "the Arrow schema travels"
        );
        let mut got: Vec<RecordBatch> = builder
            .with_batch_size(1 << 20)
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(got.len() <= 1, "one batch holds every row of these tests");
        let got = got.pop().unwrap_or_else(|| RecordBatch::new_empty(schema));
        (got, meta)
    }

    /// Writes `batches` as one partition's file (see [`round_trip`]); its bytes and schema.
    fn write_partition(
        types: &[ColumnType],
        batches: &mut [BatchBuilder],
        dictionary: bool,
        compression: Compression,
    ) -> (bytes::Bytes, SchemaRef) {
        let cols: Vec<(String, ColumnType, String)> = types
            .iter()
            .enumerate()
            .map(|(i, &t)| (format!("c{i}"), t, format!("C{i}")))
            .collect();
        let schema = body_schema(&cols);
        let plain: Vec<String> = if dictionary {
            Vec::new()
        } else {
            cols.iter().map(|c| c.0.clone()).collect()
        };
        let settings = settings_for(&schema, compression, &plain);
        let dir = tempfile::tempdir().unwrap();
        let arena = SpillArena::new(dir.path().join("pages.spill"), 4096);
        let mut comp = Compressor::new(settings.codec).unwrap();
        let mut w = PartitionWriter::new(dir.path().join("p"), settings, arena);
        for b in batches.iter_mut() {
            w.write(b, &mut comp).unwrap();
        }
        let files = w.finish(&mut comp, true).unwrap();
        assert_eq!(files.len(), 1);
        let bytes = std::fs::read(&files[0].path).unwrap();
        assert_eq!(files[0].bytes, bytes.len() as u64);
        assert_eq!(files[0].sha256, hex::encode(Sha256::digest(&bytes)));
        (bytes::Bytes::from(bytes), schema)
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // columns by number, in step with `value`
    fn interned_text_makes_the_same_file_as_plain_text() {
        // The same values as plain text buffers and as interned ones localized batch by batch
        // (as the router hands them over): codes, nulls, values an interner does not keep, a
        // value longer than a page, an interner that fills up and one that stops looking, and
        // enough distinct values for the dictionary to fall back to PLAIN in the second chunk.
        let types = [ColumnType::String, ColumnType::String];
        let value = |c: usize, i: usize| -> Option<String> {
            match (c, i % 11) {
                (_, 0) => None,
                (0, 1) if i == 1 => Some("z".repeat(crate::chunk::PAGE_BYTES + 10)),
                (0, 1 | 2) => Some(format!("long {}", "é".repeat(70 + i % 5))),
                (0, _) => Some(["01", "2A", "976", "Saint-Étienne", ""][i % 5].to_string()),
                (_, _) => Some(format!("P{:010}", i * 7919 % 1_000_003)),
            }
        };
        for dictionary in [true, false] {
            let mut plain: Vec<BatchBuilder> = Vec::new();
            let mut interned: Vec<BatchBuilder> = Vec::new();
            let mut interners = [
                Some(crate::intern::Interner::new(64 * 1024)),
                Some(crate::intern::Interner::new(64 * 1024)),
            ];
            let mut seen = Vec::new();
            let mut p = BatchBuilder::new(&types);
            let mut q = BatchBuilder::with_interned(&types, &[true, true]);
            for i in 0..120_000usize {
                for c in 0..2 {
                    match value(c, i) {
                        None => {
                            p.cols[c].push_null();
                            q.cols[c].push_null();
                        }
                        Some(v) => {
                            p.cols[c].push_text(v.as_bytes());
                            let intern = interners[c].as_mut().unwrap();
                            q.cols[c].push_interned(intern, v.as_bytes(), 0, v.len());
                        }
                    }
                }
                p.rows += 1;
                q.rows += 1;
                if i % 25_000 == 24_999 {
                    plain.push(p.take_reserving(10));
                    let mut b = q.take_reserving(10);
                    b.localize(&interners, &mut seen);
                    interned.push(b);
                }
            }
            plain.push(p.take_reserving(0));
            let mut b = q.take_reserving(0);
            b.localize(&interners, &mut seen);
            interned.push(b);
            assert!(
                !interners[1].as_ref().unwrap().enabled(),
                "ids stop the lookups"
            );
            let c = Compression::Zstd(3);
            let (a, _) = write_partition(&types, &mut plain, dictionary, c);
            let (b, _) = write_partition(&types, &mut interned, dictionary, c);
            assert!(a == b, "the same bytes (dictionary: {dictionary})");
        }
        // and what was written is the values
        let mut batches = vec![BatchBuilder::with_interned(&types, &[true, false])];
        let mut interners = [Some(crate::intern::Interner::new(1 << 20)), None];
        for i in 0..5_000 {
            for c in 0..2 {
                let Some(v) = value(c, i) else {
                    batches[0].cols[c].push_null();
                    continue;
                };
                match interners[c].as_mut() {
                    Some(n) => batches[0].cols[c].push_interned(n, v.as_bytes(), 0, v.len()),
                    None => {
                        batches[0].cols[c].push_text(v.as_bytes());
                        0
                    }
                };
            }
            batches[0].rows += 1;
        }
        batches[0].localize(&interners, &mut Vec::new());
        let (got, _) = round_trip(&types, &mut batches, true, Compression::Snappy);
        for c in 0..2 {
            let col = got
                .column(c)
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap();
            let back: Vec<Option<String>> = col.iter().map(|v| v.map(str::to_string)).collect();
            let want: Vec<Option<String>> = (0..5_000).map(|i| value(c, i)).collect();
            assert_eq!(back, want, "column {c}");
        }
    }

    #[test]
    fn index_pages_that_do_not_compress_are_stored_and_read_back() {
        use arrow_array::cast::AsArray;
        use arrow_array::types::Int32Type;
        // indices into 300 values in no order: zstd cannot shrink their pages; one column
        // of few values in runs, which it can
        let types = [ColumnType::String, ColumnType::Int];
        let mut b = BatchBuilder::new(&types);
        let mut b2 = BatchBuilder::new(&types);
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut want = Vec::new();
        for i in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = format!("v{:03}", x % 300);
            for b in [&mut b, &mut b2] {
                b.cols[0].push_text(v.as_bytes());
                b.cols[1].push_i64(i / 5_000);
                b.rows += 1;
            }
            want.push(v);
        }
        let (got, meta) = round_trip(&types, &mut [b], true, Compression::Zstd(3));
        let text = got.column(0).as_string::<i32>();
        let runs = got.column(1).as_primitive::<Int32Type>();
        for (i, v) in want.iter().enumerate() {
            assert_eq!(text.value(i), v, "row {i}");
            assert_eq!(i64::from(runs.value(i)), i as i64 / 5_000);
        }
        // pages of indices: the first compressed to see, the others stored in frames of raw
        // blocks (which zstd's own compressor never heads with an 8-byte size)
        let (bytes, _) = write_partition(&types, &mut [b2], true, Compression::Zstd(3));
        let stored = bytes
            .windows(5)
            .filter(|w| *w == [0x28, 0xB5, 0x2F, 0xFD, 0b1110_0000])
            .count();
        let index_pages = PAGES.with(|p| {
            p.borrow()
                .iter()
                .filter(|&&(c, _, e)| c == 0 && e == parquet::basic::Encoding::RLE_DICTIONARY)
                .count()
        });
        assert!(index_pages >= 5, "{index_pages}");
        assert_eq!(stored, index_pages - 1);
        let runs = meta.row_group(0).column(1);
        assert!(runs.compressed_size() < runs.uncompressed_size() / 4);
    }

    #[test]
    fn chunks_read_back_exactly_with_their_statistics() {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type};
        use parquet::file::statistics::Statistics;
        let types = [
            ColumnType::String,
            ColumnType::Int,
            ColumnType::BigInt,
            ColumnType::Double,
            ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
            ColumnType::Decimal {
                precision: 30,
                scale: 4,
            },
            ColumnType::Boolean,
            ColumnType::Date,
            ColumnType::Timestamp,
            ColumnType::String,
        ];
        // three batches: the second all null in every column, the third long text values
        // (pages cut by size) and a dictionary past its limit (plain pages after it)
        let mut batches: Vec<BatchBuilder> = (0..3).map(|_| BatchBuilder::new(&types)).collect();
        let mut expect_text: Vec<Option<String>> = Vec::new();
        let mut expect_num: Vec<Option<i64>> = Vec::new();
        for (bi, b) in batches.iter_mut().enumerate() {
            let rows = [2500usize, 700, 30_000][bi];
            for i in 0..rows {
                let null = bi == 1 || i % 7 == 3;
                let n = (i as i64 * 7919) % 1000 - 500;
                if null {
                    for c in &mut b.cols {
                        c.push_null();
                    }
                    expect_text.push(None);
                    expect_num.push(None);
                } else {
                    let text = if bi == 2 {
                        format!("{i:06}-{}", "x".repeat(i % 97))
                    } else {
                        ["01", "2A", "976", "é"][i % 4].to_string()
                    };
                    b.cols[0].push_text(text.as_bytes());
                    b.cols[1].push_i64(n);
                    b.cols[2].push_i64(n * 1_000_000_007);
                    b.cols[3].push_f64(if n == 0 { -0.0 } else { n as f64 / 4.0 });
                    b.cols[4].push_i128(i128::from(n) * 100 + 5);
                    b.cols[5].push_i128(i128::from(n) * 10_i128.pow(20));
                    b.cols[6].push_bool(n % 2 == 0);
                    b.cols[7].push_i64(19_000 + n);
                    b.cols[8].push_i64(1_700_000_000_000 + n);
                    if i == 5 {
                        // one value longer than a page, and a long value for the statistics
                        b.cols[9].push_text("z".repeat(crate::chunk::PAGE_BYTES + 10).as_bytes());
                    } else {
                        b.cols[9].push_text(format!("{}{i}", "é".repeat(40)).as_bytes());
                    }
                    expect_text.push(Some(text));
                    expect_num.push(Some(n));
                }
                b.rows += 1;
            }
        }
        for dictionary in [true, false] {
            for compression in [Compression::Zstd(3), Compression::Snappy] {
                let (got, meta) = round_trip(&types, &mut batches, dictionary, compression);
                let n = expect_num.len();
                assert_eq!(got.num_rows(), n);
                let text = got.column(0).as_string::<i32>();
                let ints = got.column(1).as_primitive::<Int32Type>();
                let big = got.column(2).as_primitive::<Int64Type>();
                let dbl = got.column(3).as_primitive::<Float64Type>();
                let dec = got.column(4).as_primitive::<Decimal128Type>();
                let wide = got.column(5).as_primitive::<Decimal128Type>();
                let flags = got.column(6).as_boolean();
                let days = got.column(7).as_primitive::<Date32Type>();
                for i in 0..n {
                    match (&expect_text[i], expect_num[i]) {
                        (Some(t), Some(v)) => {
                            assert_eq!(text.value(i), t, "row {i}");
                            assert_eq!(i64::from(ints.value(i)), v);
                            assert_eq!(big.value(i), v * 1_000_000_007);
                            assert_eq!(dbl.value(i), if v == 0 { -0.0 } else { v as f64 / 4.0 });
                            assert_eq!(dec.value(i), i128::from(v) * 100 + 5);
                            assert_eq!(wide.value(i), i128::from(v) * 10_i128.pow(20));
                            assert_eq!(flags.value(i), v % 2 == 0);
                            assert_eq!(i64::from(days.value(i)), 19_000 + v);
                        }
                        _ => {
                            for c in got.columns() {
                                assert!(c.is_null(i), "row {i} is null in every column");
                            }
                        }
                    }
                }
                assert_eq!(
                    got.column(9).as_string::<i32>().value(5).len(),
                    crate::chunk::PAGE_BYTES + 10
                );
                // statistics: exact bounds, null counts, long text truncated to a bound
                let rg = meta.row_group(0);
                assert_eq!(meta.num_row_groups(), 1);
                let nulls = expect_num.iter().filter(|v| v.is_none()).count() as u64;
                let (lo, hi) = expect_num
                    .iter()
                    .flatten()
                    .fold((i64::MAX, i64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                for c in rg.columns() {
                    assert_eq!(c.statistics().unwrap().null_count_opt(), Some(nulls));
                }
                match rg.column(1).statistics().unwrap() {
                    Statistics::Int32(s) => {
                        assert_eq!(
                            (s.min_opt(), s.max_opt()),
                            (Some(&(lo as i32)), Some(&(hi as i32)))
                        );
                    }
                    other => panic!("{other:?}"),
                }
                match rg.column(4).statistics().unwrap() {
                    Statistics::Int64(s) => assert_eq!(
                        (s.min_opt(), s.max_opt()),
                        (Some(&(lo * 100 + 5)), Some(&(hi * 100 + 5)))
                    ),
                    other => panic!("{other:?}"),
                }
                match rg.column(5).statistics().unwrap() {
                    Statistics::FixedLenByteArray(s) => {
                        let v = |b: &[u8]| {
                            let mut be = if b[0] & 0x80 != 0 {
                                [0xff; 16]
                            } else {
                                [0; 16]
                            };
                            be[16 - b.len()..].copy_from_slice(b);
                            i128::from_be_bytes(be)
                        };
                        assert_eq!(
                            v(s.min_opt().unwrap().data()),
                            i128::from(lo) * 10_i128.pow(20)
                        );
                        assert_eq!(
                            v(s.max_opt().unwrap().data()),
                            i128::from(hi) * 10_i128.pow(20)
                        );
                    }
                    other => panic!("{other:?}"),
                }
                match rg.column(3).statistics().unwrap() {
                    Statistics::Double(s) => {
                        assert_eq!(s.min_opt(), Some(&(lo as f64 / 4.0)));
                        assert_eq!(s.max_opt(), Some(&(hi as f64 / 4.0)));
                    }
                    other => panic!("{other:?}"),
                }
                match rg.column(0).statistics().unwrap() {
                    Statistics::ByteArray(s) => {
                        let all: Vec<&String> = expect_text.iter().flatten().collect();
                        let min = all.iter().min().unwrap();
                        let max = all.iter().max().unwrap();
                        assert_eq!(s.min_opt().unwrap().data(), min.as_bytes());
                        assert_eq!(s.max_opt().unwrap().data(), max.as_bytes());
                    }
                    other => panic!("{other:?}"),
                }
                match rg.column(9).statistics().unwrap() {
                    Statistics::ByteArray(s) => {
                        let max = s.max_opt().unwrap().data();
                        assert!(
                            max.len() <= 64 && max > "z".repeat(64).as_bytes(),
                            "an upper bound"
                        );
                        assert!(!s.max_is_exact());
                        assert!(std::str::from_utf8(s.min_opt().unwrap().data()).is_ok());
                    }
                    other => panic!("{other:?}"),
                }
                use parquet::basic::{Encoding, PageType};
                let pages = PAGES.with(|p| p.borrow().clone());
                let mut text: Vec<Encoding> = pages
                    .iter()
                    .filter(|p| p.0 == 0 && p.1 == PageType::DATA_PAGE)
                    .map(|p| p.2)
                    .collect();
                // pages of one encoding in a row, once (a batch spans several pages)
                text.dedup();
                if dictionary {
                    assert!(rg.column(0).dictionary_page_offset().is_some());
                    // batch 1 by dictionary, batch 2 (nulls only) PLAIN, batch 3 by dictionary
                    // until it is full, PLAIN after
                    assert_eq!(
                        text,
                        [
                            Encoding::RLE_DICTIONARY,
                            Encoding::PLAIN,
                            Encoding::RLE_DICTIONARY,
                            Encoding::PLAIN
                        ],
                        "dictionary pages, then PLAIN once the dictionary is full"
                    );
                } else {
                    assert!(rg.column(0).dictionary_page_offset().is_none());
                    assert!(text.iter().all(|&e| e == Encoding::PLAIN));
                }
                // the long values of column 9: one page holds the value longer than a page
                assert!(pages.iter().filter(|p| p.0 == 9).count() >= 3);
            }
        }
    }

    #[test]
    fn nulls_around_the_words_the_encoder_reads_come_back_in_every_column() {
        // The encoder reads validity 64 rows at a time: pages without nulls, nulls at rows 63,
        // 64 and 65, a whole word of nulls, a page of nulls only, every other row null, and
        // text pages cut by size at rows that are not on a byte.
        let types = [
            ColumnType::Int,
            ColumnType::BigInt,
            ColumnType::Double,
            ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
            ColumnType::Decimal {
                precision: 30,
                scale: 4,
            },
            ColumnType::Boolean,
            ColumnType::String,
            ColumnType::String,
        ];
        let null = |batch: usize, i: usize| match batch {
            0 => false,
            1 => matches!(i, 63..=65 | 127..=129 | 192..=255 | 299),
            2 => true,
            _ => i % 2 == 1 || i == 64,
        };
        let cols: Vec<(String, ColumnType, String)> = types
            .iter()
            .enumerate()
            .map(|(i, &t)| (format!("c{i}"), t, format!("C{i}")))
            .collect();
        let schema = body_schema(&cols);
        let mut batches = Vec::new();
        let mut all = BatchBuilder::new(&types);
        for (bi, rows) in [300usize, 300, 100, 301].into_iter().enumerate() {
            let mut b = BatchBuilder::new(&types);
            for i in 0..rows {
                let n = (i as i64 * 7919) % 1000 - 500;
                for t in [&mut b, &mut all] {
                    if null(bi, i) {
                        t.cols
                            .iter_mut()
                            .for_each(crate::columns::Column::push_null);
                    } else {
                        t.cols[0].push_i64(n);
                        t.cols[1].push_i64(n * 1_000_000_007);
                        t.cols[2].push_f64(n as f64 / 4.0);
                        t.cols[3].push_i128(i128::from(n) * 100 + 5);
                        t.cols[4].push_i128(i128::from(n) * 10_i128.pow(20));
                        t.cols[5].push_bool(n % 3 == 0);
                        t.cols[6].push_text(["01", "2A", "976", "é"][i % 4].as_bytes());
                        t.cols[7]
                            .push_text(format!("{i:04}{}", "x".repeat(900 + i % 300)).as_bytes());
                    }
                    t.rows += 1;
                }
            }
            batches.push(b);
        }
        let want = all.finish(&schema).unwrap();
        for dictionary in [true, false] {
            let (got, _) = round_trip(&types, &mut batches, dictionary, Compression::Zstd(3));
            assert_eq!(got.num_rows(), want.num_rows());
            for c in 0..types.len() {
                assert_eq!(
                    got.column(c).as_ref(),
                    want.column(c).as_ref(),
                    "column {c}, dictionary {dictionary}"
                );
            }
        }
    }

    #[test]
    fn an_empty_partition_is_a_typed_file_without_row_groups() {
        let types = [ColumnType::String, ColumnType::Date];
        let (got, meta) = round_trip(&types, &mut [], true, Compression::Zstd(3));
        assert_eq!(got.num_rows(), 0);
        assert_eq!(meta.num_row_groups(), 0);
    }

    #[test]
    fn small_batches_wait_in_the_spill_and_rows_keep_their_order() {
        use arrow_array::cast::AsArray;
        use arrow_array::types::Int64Type;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let types = [ColumnType::String, ColumnType::BigInt];
        let schema = body_schema(&[
            ("code".into(), ColumnType::String, "code".into()),
            ("n".into(), ColumnType::BigInt, "n".into()),
        ]);
        let settings = settings_for(&schema, Compression::Zstd(3), &[]);
        let dir = tempfile::tempdir().unwrap();
        let arena = SpillArena::new(dir.path().join("pages.spill"), 1 << 20);
        let spill = Arc::new(RowSpill::new(dir.path().join("rows.spill")));
        let mut enc = Encoder::new(
            settings,
            dir.path().to_path_buf(),
            arena,
            spill.clone(),
            types.to_vec(),
        )
        .unwrap();
        let mut n = 0i64;
        let mut batch = |rows: usize, part: usize| {
            let mut b = BatchBuilder::new(&types);
            for _ in 0..rows {
                b.cols[0].push_text(format!("code-{part}-{}", n % 5).as_bytes());
                b.cols[1].push_i64(n);
                b.rows += 1;
                n += 1;
            }
            b
        };
        // partitions 0 and 1: small batches only (set aside); partition 2: small, large, closed
        // early by the router, small, large
        for round in 0..30 {
            enc.write(
                round % 2,
                &format!("p={}", round % 2),
                &batch(100, round % 2),
            )
            .unwrap();
        }
        enc.write(2, "p=2", &batch(100, 2)).unwrap();
        enc.write(2, "p=2", &batch(SPILL_ROWS, 2)).unwrap();
        enc.close(2).unwrap();
        enc.write(2, "p=2", &batch(100, 2)).unwrap();
        enc.write(2, "p=2", &batch(SPILL_ROWS + 1, 2)).unwrap();
        assert!(spill.bytes() > 0, "small batches were set aside");
        let mut all = Vec::new();
        let mut groups = Vec::new();
        for (part, files) in enc.finish().unwrap() {
            assert_eq!(files.len(), 1);
            groups.push(files[0].row_groups);
            let bytes = bytes::Bytes::from(std::fs::read(&files[0].path).unwrap());
            let r = ParquetRecordBatchReaderBuilder::try_new(bytes)
                .unwrap()
                .build()
                .unwrap();
            let mut ids = Vec::new();
            for b in r {
                let b = b.unwrap();
                ids.extend(
                    b.column(1)
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .copied(),
                );
            }
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "partition {part} in row order"
            );
            all.extend(ids);
        }
        assert_eq!(
            groups,
            [1, 1, 2],
            "one row group each, two where the router closed one"
        );
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "every row, once");
    }
}
