//! Parquet files of one partition: writer properties, row-group and file rolling, output hashing.
//!
//! Owns how a stream of record batches for one Hive partition becomes `part-*.parquet` files of
//! bounded size with bounded row groups, zstd or snappy, chunk statistics and a SHA-256 of every
//! byte written. It does not decide partitions or parse CSV.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use sha2::{Digest, Sha256};

use crate::contract::{Compression, OutputSettings};

/// Writes and hashes.
pub struct HashingWriter {
    inner: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
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
        .set_created_by(format!("lakemesh-agent {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(metadata));
    for c in no_dictionary {
        b = b.set_column_dictionary_enabled(
            parquet::schema::types::ColumnPath::from(c.as_str()),
            false,
        );
    }
    Ok(b.build())
}

/// The files of one partition, rolled by size.
pub struct PartitionWriter {
    dir: PathBuf,
    schema: SchemaRef,
    props: WriterProperties,
    row_group_bytes: u64,
    target_file_bytes: u64,
    current: Option<(ArrowWriter<HashingWriter>, PathBuf, u64)>,
    next_seq: u32,
    pub files: Vec<WrittenFile>,
}

impl PartitionWriter {
    pub fn new(
        dir: PathBuf,
        schema: SchemaRef,
        props: WriterProperties,
        out: &OutputSettings,
    ) -> Self {
        Self {
            dir,
            schema,
            props,
            row_group_bytes: out.row_group_bytes,
            target_file_bytes: out.target_file_bytes,
            current: None,
            next_seq: 0,
            files: Vec::new(),
        }
    }

    fn open(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("part-{}.parquet.tmp", self.next_seq));
        let file = File::create(&path)?;
        let w = HashingWriter {
            inner: BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let aw = ArrowWriter::try_new(w, self.schema.clone(), Some(self.props.clone()))
            .map_err(io::Error::other)?;
        self.current = Some((aw, path, 0));
        Ok(())
    }

    /// Appends a batch; closes the row group above the row-group size and the file above the
    /// target size.
    pub fn write(&mut self, batch: &RecordBatch) -> io::Result<()> {
        if self.current.is_none() {
            self.open()?;
        }
        let Some((w, _, rows)) = self.current.as_mut() else {
            unreachable!("opened above")
        };
        w.write(batch).map_err(io::Error::other)?;
        *rows += batch.num_rows() as u64;
        if w.in_progress_size() as u64 >= self.row_group_bytes {
            self.end_row_group()?;
        }
        Ok(())
    }

    /// Estimated bytes held by the open row group.
    pub fn in_progress_bytes(&self) -> usize {
        self.current
            .as_ref()
            .map_or(0, |(w, _, _)| w.in_progress_size())
    }

    /// Ends the open row group (if any) and rolls the file when it reached its target size.
    pub fn end_row_group(&mut self) -> io::Result<()> {
        let Some((w, _, _)) = self.current.as_mut() else {
            return Ok(());
        };
        w.flush().map_err(io::Error::other)?;
        if w.bytes_written() as u64 >= self.target_file_bytes {
            self.close_file()?;
        }
        Ok(())
    }

    fn close_file(&mut self) -> io::Result<()> {
        let Some((mut w, path, rows)) = self.current.take() else {
            return Ok(());
        };
        w.flush().map_err(io::Error::other)?;
        let row_groups = w.flushed_row_groups().len();
        let HashingWriter {
            mut inner,
            hasher,
            bytes,
        } = w.into_inner().map_err(io::Error::other)?;
        inner.flush()?;
        inner.get_ref().sync_all()?;
        self.files.push(WrittenFile {
            path,
            seq: self.next_seq,
            bytes,
            rows,
            row_groups,
            sha256: hex::encode(hasher.finalize()),
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

/// Keeps the Arc type in the signature readable.
pub type Schema = Arc<arrow_schema::Schema>;
