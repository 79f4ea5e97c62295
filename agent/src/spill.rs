//! Spill files of the staging folder: compressed pages of open row groups, and rows too few to
//! make pages of.
//!
//! Rows of a month may be spread over the whole export, and a row group (hence a file) can only
//! be written once its rows are all known; holding them all in memory makes memory grow with the
//! input, as every peer converter does. Two stores keep memory bounded instead:
//! - [`SpillArena`]: rows become compressed pages as they arrive ([`crate::chunk`]) and the pages
//!   wait on the heap under a cap, in one spill file beyond it, until their row group is written;
//! - [`RowSpill`]: batches of a partition too small for pages of their own (thousands of
//!   partitions under a small budget) wait as raw column buffers in one append-only file, and are
//!   read back together when the partition is written.
//!
//! It owns this file and nothing else: it knows nothing of partitions, rows' meaning or Parquet
//! layout.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use parquet::arrow::arrow_writer::{PageKey, PageStore};
use parquet::errors::{ParquetError, Result};

/// Where one spilled batch lies in a [`RowSpill`] file.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    offset: u64,
    len: usize,
}

/// A spill file error: the path and what happened.
#[derive(Debug, thiserror::Error)]
#[error("spill file {}: {source}", .path.display())]
pub struct SpillError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

#[derive(Debug)]
struct RowSpillFile {
    file: Option<File>,
    end: u64,
}

/// Batches set aside until their partition is written: one append-only file of byte segments,
/// shared by every encoder thread (appends take a lock; reads are positioned). Removed when
/// dropped.
#[derive(Debug)]
pub struct RowSpill {
    path: PathBuf,
    state: Mutex<RowSpillFile>,
}

impl RowSpill {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            state: Mutex::new(RowSpillFile { file: None, end: 0 }),
        }
    }

    fn err(&self, source: std::io::Error) -> SpillError {
        SpillError {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends `bytes`; returns where they lie.
    pub fn append(&self, bytes: &[u8]) -> std::result::Result<Segment, SpillError> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| self.err(std::io::Error::other("spill lock poisoned")))?;
        if s.file.is_none() {
            let f = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)
                .map_err(|e| self.err(e))?;
            s.file = Some(f);
        }
        let offset = s.end;
        let Some(f) = s.file.as_ref() else {
            unreachable!("opened above")
        };
        f.write_all_at(bytes, offset).map_err(|e| self.err(e))?;
        s.end += bytes.len() as u64;
        Ok(Segment {
            offset,
            len: bytes.len(),
        })
    }

    /// Reads a segment back into `out` (replacing its contents).
    pub fn read(&self, seg: Segment, out: &mut Vec<u8>) -> std::result::Result<(), SpillError> {
        let s = self
            .state
            .lock()
            .map_err(|_| self.err(std::io::Error::other("spill lock poisoned")))?;
        let Some(f) = s.file.as_ref() else {
            return Err(self.err(std::io::Error::other("read before any write")));
        };
        out.clear();
        out.resize(seg.len, 0);
        f.read_exact_at(out, seg.offset).map_err(|e| self.err(e))
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.end)
    }
}

impl Drop for RowSpill {
    fn drop(&mut self) {
        if let Ok(s) = self.state.get_mut()
            && s.file.take().is_some()
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The spill file and the count of page bytes resident in memory, shared by every page store of
/// one encoder.
#[derive(Debug)]
struct ArenaState {
    path: PathBuf,
    file: Option<File>,
    end: u64,
    resident: usize,
    spilled_total: u64,
}

/// A page arena shared by the chunks of every encoder of one conversion.
#[derive(Debug, Clone)]
pub struct SpillArena {
    state: Arc<Mutex<ArenaState>>,
    cap: usize,
}

impl SpillArena {
    /// An arena keeping up to `resident_cap` bytes of pages in memory and spilling the rest to
    /// `path` (created on first use, removed when the last handle is dropped).
    pub fn new(path: impl Into<PathBuf>, resident_cap: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(ArenaState {
                path: path.into(),
                file: None,
                end: 0,
                resident: 0,
                spilled_total: 0,
            })),
            cap: resident_cap,
        }
    }

    /// A store for the pages of one column chunk.
    pub fn store(&self) -> ArenaStore {
        ArenaStore {
            arena: self.clone(),
            slots: Vec::new(),
            resident: 0,
        }
    }

    /// Page bytes currently held in memory.
    pub fn resident_bytes(&self) -> usize {
        self.state.lock().map_or(0, |s| s.resident)
    }

    /// Page bytes written to the spill file so far.
    pub fn spilled_bytes(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.spilled_total)
    }

    /// Where the spill file is (or would be).
    pub fn path(&self) -> PathBuf {
        self.state
            .lock()
            .map_or_else(|_| PathBuf::new(), |s| s.path.clone())
    }
}

impl Drop for ArenaState {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn poisoned() -> ParquetError {
    ParquetError::General("page arena lock poisoned by a panicking writer".into())
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> ParquetError {
    ParquetError::External(Box::new(std::io::Error::new(
        e.kind(),
        format!("{what} spill file {}: {e}", path.display()),
    )))
}

enum Slot {
    Memory(Bytes),
    Disk { offset: u64, len: usize },
    Taken,
}

/// The pages of one column chunk.
pub struct ArenaStore {
    arena: SpillArena,
    slots: Vec<Slot>,
    resident: usize,
}

impl PageStore for ArenaStore {
    fn put(&mut self, value: Bytes) -> Result<PageKey> {
        let key = PageKey::new(self.slots.len() as u64);
        let mut s = self.arena.state.lock().map_err(|_| poisoned())?;
        if s.resident + value.len() <= self.arena.cap {
            s.resident += value.len();
            self.resident += value.len();
            self.slots.push(Slot::Memory(value));
            return Ok(key);
        }
        if s.file.is_none() {
            let f = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&s.path)
                .map_err(|e| io_error(&s.path, "cannot create", e))?;
            s.file = Some(f);
        }
        let offset = s.end;
        let Some(f) = s.file.as_ref() else {
            unreachable!("opened above")
        };
        if let Err(e) = f.write_all_at(&value, offset) {
            return Err(io_error(&s.path, "cannot write to", e));
        }
        s.end += value.len() as u64;
        s.spilled_total += value.len() as u64;
        self.slots.push(Slot::Disk {
            offset,
            len: value.len(),
        });
        Ok(key)
    }

    fn take(&mut self, key: PageKey) -> Result<Bytes> {
        let slot = self
            .slots
            .get_mut(key.get() as usize)
            .map(|s| std::mem::replace(s, Slot::Taken))
            .ok_or_else(|| ParquetError::General(format!("invalid page key {}", key.get())))?;
        match slot {
            Slot::Memory(b) => {
                self.resident -= b.len();
                let mut s = self.arena.state.lock().map_err(|_| poisoned())?;
                s.resident -= b.len();
                Ok(b)
            }
            Slot::Disk { offset, len } => {
                let s = self.arena.state.lock().map_err(|_| poisoned())?;
                let Some(f) = s.file.as_ref() else {
                    return Err(ParquetError::General(format!(
                        "page {} is in a spill file that was never created",
                        key.get()
                    )));
                };
                let mut buf = vec![0u8; len];
                f.read_exact_at(&mut buf, offset)
                    .map_err(|e| io_error(&s.path, "cannot read back", e))?;
                Ok(Bytes::from(buf))
            }
            Slot::Taken => Err(ParquetError::General(format!(
                "page {} taken twice",
                key.get()
            ))),
        }
    }

    fn memory_size(&self) -> usize {
        self.resident
    }
}

impl Drop for ArenaStore {
    fn drop(&mut self) {
        // A writer dropped half-way (an error elsewhere) gives its resident pages back.
        if self.resident > 0
            && let Ok(mut s) = self.arena.state.lock()
        {
            s.resident -= self.resident;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(arena: &SpillArena) -> ArenaStore {
        arena.store()
    }

    #[test]
    fn pages_over_the_cap_go_to_disk_and_come_back_intact() {
        let dir = tempfile::tempdir().unwrap();
        let arena = SpillArena::new(dir.path().join("pages.spill"), 10);
        let mut a = store(&arena);
        let mut b = store(&arena);
        let k1 = a.put(Bytes::from_static(b"12345678")).unwrap(); // 8 resident
        let k2 = b.put(Bytes::from_static(b"abcdef")).unwrap(); // 8 + 6 > 10: disk
        let k3 = a.put(Bytes::from_static(b"xy")).unwrap(); // 10 resident
        assert_eq!(arena.resident_bytes(), 10);
        assert_eq!(arena.spilled_bytes(), 6);
        assert_eq!((a.memory_size(), b.memory_size()), (10, 0));
        assert_eq!(&b.take(k2).unwrap()[..], b"abcdef");
        assert_eq!(&a.take(k3).unwrap()[..], b"xy");
        assert_eq!(&a.take(k1).unwrap()[..], b"12345678");
        assert_eq!(arena.resident_bytes(), 0);
        assert!(a.take(k1).is_err(), "a page cannot be taken twice");
        let spill = arena.path();
        assert!(spill.exists());
        drop((a, b, arena));
        assert!(!spill.exists(), "the spill file goes with the arena");
    }

    #[test]
    fn spilled_segments_come_back_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.spill");
        let spill = RowSpill::new(&path);
        let a = spill.append(b"first").unwrap();
        let b = spill.append(b"").unwrap();
        let c = spill.append(b"third segment").unwrap();
        let mut out = Vec::new();
        spill.read(c, &mut out).unwrap();
        assert_eq!(out, b"third segment");
        spill.read(a, &mut out).unwrap();
        assert_eq!(out, b"first");
        spill.read(b, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(spill.bytes(), 18);
        assert!(path.exists());
        drop(spill);
        assert!(!path.exists(), "the spill file goes with the spill");
    }

    #[test]
    fn a_dropped_store_returns_its_resident_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let arena = SpillArena::new(dir.path().join("p"), 100);
        let mut a = store(&arena);
        a.put(Bytes::from_static(b"hello")).unwrap();
        assert_eq!(arena.resident_bytes(), 5);
        drop(a);
        assert_eq!(arena.resident_bytes(), 0);
        assert!(!arena.path().exists(), "nothing spilled, no file");
    }
}
