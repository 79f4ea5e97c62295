//! The ledger: one SQLite database (`{state_dir}/ledger.sqlite`, rusqlite with SQLite bundled)
//! recording every claimed file and each step of its delivery, so that a process killed at any
//! point resumes where it stopped.
//!
//! Owns the schema (versioned with `PRAGMA user_version`; [`SCHEMA_VERSION`]), the file states
//! and their transitions ([`State`]), the objects of each batch and whether each is in the
//! bucket, the step log, and the last error. Every transition is one transaction; the database
//! runs in WAL mode with `synchronous = FULL`, so a committed step survives a crash or a power
//! cut, and `status` can read while the service writes.
//!
//! Does not own the files themselves (the pipeline moves them) nor AWS.
//!
//! States, in order: `claiming` (row written, rename into `work/` pending) → `claimed` →
//! `converted` (objects and announcement recorded) → `uploaded` (every object in the bucket) →
//! `announced` (message sent) → `done` (source archived or deleted). Side exits: `duplicate`
//! (same content as a file already delivered or on its way; archived, not announced),
//! `failed` (conversion refused the file; it is in `failed/`), `retried` (a failed file sent
//! back to the inbox by `retry`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

/// The schema this build writes; older databases are migrated on open, newer ones refused.
pub const SCHEMA_VERSION: i64 = 1;

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite refused an operation.
    #[error("ledger {path}: {what}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database was written by a newer agent.
    #[error(
        "ledger {path}: schema version {found} is newer than this agent's ({SCHEMA_VERSION}); upgrade the agent"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` found.
        found: i64,
    },
    /// A row holds a value this build does not know.
    #[error("ledger {path}: file {id}: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The file's id.
        id: i64,
        /// What is wrong.
        reason: String,
    },
}

impl LedgerError {
    /// A busy or locked database may succeed later; anything else will not by itself.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}

/// Where a claimed file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The row exists; the rename into `work/` may not have happened.
    Claiming,
    /// In `work/`, waiting for hashing and conversion.
    Claimed,
    /// Converted: its objects wait in the spool.
    Converted,
    /// Every object is in the bucket.
    Uploaded,
    /// The announcement was sent.
    Announced,
    /// Delivered; the source is archived (or deleted).
    Done,
    /// The same content was already delivered (or is on its way); not announced again.
    Duplicate,
    /// Refused by the converter; the file and its report are in `failed/`.
    Failed,
    /// A failed file sent back to the inbox by `retry`.
    Retried,
}

impl State {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claiming => "claiming",
            Self::Claimed => "claimed",
            Self::Converted => "converted",
            Self::Uploaded => "uploaded",
            Self::Announced => "announced",
            Self::Done => "done",
            Self::Duplicate => "duplicate",
            Self::Failed => "failed",
            Self::Retried => "retried",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "claiming" => Self::Claiming,
            "claimed" => Self::Claimed,
            "converted" => Self::Converted,
            "uploaded" => Self::Uploaded,
            "announced" => Self::Announced,
            "done" => Self::Done,
            "duplicate" => Self::Duplicate,
            "failed" => Self::Failed,
            "retried" => Self::Retried,
            _ => return None,
        })
    }

    /// Whether the file still has steps to go (the backlog).
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            Self::Claiming | Self::Claimed | Self::Converted | Self::Uploaded | Self::Announced
        )
    }

    /// The states a file may move to from this one.
    pub fn next_states(self) -> &'static [State] {
        use State::*;
        match self {
            Claiming => &[Claimed],
            Claimed => &[Claimed, Converted, Duplicate, Failed],
            // Back to claimed when the spool lost a file: converted again, same keys.
            Converted => &[Claimed, Uploaded],
            Uploaded => &[Announced],
            Announced => &[Done],
            Failed => &[Retried],
            Done | Duplicate | Retried => &[],
        }
    }

    /// Whether `self → to` is a transition of the state machine.
    pub fn can_go_to(self, to: State) -> bool {
        self.next_states().contains(&to)
    }
}

/// One claimed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRecord {
    /// Claim order: files are delivered in this order.
    pub id: i64,
    /// The product.
    pub product: String,
    /// The file's name as dropped.
    pub name: String,
    /// Where the claimed file is: `work/{product}/{id}/{name}`.
    pub work_path: PathBuf,
    /// Size when claimed.
    pub bytes: u64,
    /// Content SHA-256 (lowercase hex), once hashed.
    pub sha256: Option<String>,
    /// First 16 hex digits of `sha256`.
    pub batch_id: Option<String>,
    /// Where it stands.
    pub state: State,
    /// Delivered again even if the same content was delivered before (`ingest --force`).
    pub force: bool,
    /// Rows delivered, once converted.
    pub rows: Option<u64>,
    /// The announcement (inline form, JSON), fixed at conversion so every send is the same.
    #[serde(skip)]
    pub announcement: Option<String>,
    /// The SQS message id of the announcement, once sent.
    pub message_id: Option<String>,
    /// Where the source went at the end (archive or failed folder), once moved.
    pub final_path: Option<PathBuf>,
    /// Failed attempts of the current step.
    pub attempts: u32,
    /// The last error of this file.
    pub last_error: Option<String>,
    /// When it was claimed (UTC, RFC 3339).
    pub claimed_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// One object of a converted batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRecord {
    /// Position in the batch (0-based), the order objects are listed in the announcement.
    pub seq: u32,
    /// The full S3 key: `{prefix}/{product}/{k=v}/…/part-{batch}-{n}.parquet`.
    pub key: String,
    /// The file in the spool.
    pub local_path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Whether it is in the bucket (checksum confirmed).
    pub uploaded: bool,
}

/// What `status` reports from the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerStatus {
    /// Files not delivered yet, oldest first.
    pub backlog: Vec<FileRecord>,
    /// Bytes of the backlog's sources.
    pub backlog_bytes: u64,
    /// Objects of the backlog not in the bucket yet.
    pub objects_pending: u64,
    /// Files by state (every state with at least one file).
    pub counts: Vec<(State, u64)>,
    /// The last error of any step, with its time, if one happened.
    pub last_error: Option<(String, String)>,
    /// The last delivered file, if any.
    pub last_delivered: Option<FileRecord>,
}

/// An open ledger.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA_V1: &str = "
CREATE TABLE files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product TEXT NOT NULL,
    name TEXT NOT NULL,
    work_path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT,
    batch_id TEXT,
    state TEXT NOT NULL,
    force INTEGER NOT NULL DEFAULT 0,
    rows INTEGER,
    announcement TEXT,
    message_id TEXT,
    final_path TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    claimed_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX files_state ON files(state, id);
CREATE INDEX files_content ON files(product, sha256);
CREATE TABLE objects (
    file_id INTEGER NOT NULL REFERENCES files(id),
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    local_path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_at TEXT,
    PRIMARY KEY (file_id, seq),
    UNIQUE (file_id, key)
);
CREATE TABLE steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER,
    step TEXT NOT NULL,
    detail TEXT,
    at TEXT NOT NULL
);
CREATE TABLE agent_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    at TEXT NOT NULL
);
";

const FILE_COLUMNS: &str = "id, product, name, work_path, bytes, sha256, batch_id, state, force, rows, \
     announcement, message_id, final_path, attempts, last_error, claimed_at, updated_at";

fn now() -> String {
    crate::convert::now_rfc3339()
}

impl Ledger {
    /// Opens (creating or migrating) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let err = |what: &str| {
            let path = path.to_path_buf();
            let what = what.to_owned();
            move |source| LedgerError::Sqlite { path, what, source }
        };
        let conn = Connection::open(path).map_err(err("open"))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(err("set busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err("set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err("enable foreign keys"))?;
        let read_version = |conn: &Connection| -> Result<i64, LedgerError> {
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(err("read schema version"))
        };
        let mut version = read_version(&conn)?;
        if version < SCHEMA_VERSION {
            // Under the write lock, and read again: another process (`status` beside a first
            // `run`) may have created the schema in the meantime.
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(err("lock for the schema"))?;
            let migrated = (|| {
                version = read_version(&conn)?;
                if version < 1 {
                    conn.execute_batch(&format!("{SCHEMA_V1} PRAGMA user_version = 1;"))
                        .map_err(err("create schema version 1"))?;
                    version = 1;
                }
                Ok::<(), LedgerError>(())
            })();
            let end = if migrated.is_ok() {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            conn.execute_batch(end)
                .map_err(err("end the schema change"))?;
            migrated?;
        }
        if version > SCHEMA_VERSION {
            return Err(LedgerError::TooNew {
                path: path.to_path_buf(),
                found: version,
            });
        }
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> LedgerError + '_ {
        let what = what.into();
        move |source| LedgerError::Sqlite {
            path: self.path.clone(),
            what,
            source,
        }
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, LedgerError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err("read schema version"))
    }

    /// Records a claim about to happen: a `claiming` row whose work path is
    /// `work_dir(id)/{name}`. Returns the new row.
    pub fn begin_claim(
        &mut self,
        product: &str,
        name: &str,
        bytes: u64,
        force: bool,
        work_dir: impl Fn(i64) -> PathBuf,
    ) -> Result<FileRecord, LedgerError> {
        let at = now();
        let tx = self
            .conn
            .transaction()
            .map_err(|source| LedgerError::Sqlite {
                path: self.path.clone(),
                what: "begin claim".into(),
                source,
            })?;
        tx.execute(
            "INSERT INTO files (product, name, work_path, bytes, state, force, claimed_at, updated_at)
             VALUES (?1, ?2, '', ?3, 'claiming', ?4, ?5, ?5)",
            params![product, name, bytes as i64, force, at],
        )
        .map_err(|source| LedgerError::Sqlite {
            path: self.path.clone(),
            what: format!("record claim of {name}"),
            source,
        })?;
        let id = tx.last_insert_rowid();
        let work = work_dir(id).join(name);
        tx.execute(
            "UPDATE files SET work_path = ?1 WHERE id = ?2",
            params![work.to_string_lossy(), id],
        )
        .and_then(|_| {
            tx.execute(
                "INSERT INTO steps (file_id, step, detail, at) VALUES (?1, 'claiming', ?2, ?3)",
                params![id, name, at],
            )
        })
        .and_then(|_| tx.commit())
        .map_err(|source| LedgerError::Sqlite {
            path: self.path.clone(),
            what: format!("record claim of {name}"),
            source,
        })?;
        self.file(id)
    }

    /// Forgets a claim whose rename did not happen (the file is still in the inbox).
    pub fn abandon_claim(&mut self, id: i64) -> Result<(), LedgerError> {
        self.conn
            .execute("DELETE FROM steps WHERE file_id = ?1", params![id])
            .and_then(|_| {
                self.conn.execute(
                    "DELETE FROM files WHERE id = ?1 AND state = 'claiming'",
                    params![id],
                )
            })
            .map(|_| ())
            .map_err(self.err(format!("abandon claim of file {id}")))
    }

    /// Moves file `id` from one of the states it may be in to `to`, recording `step` (with
    /// `detail`) and resetting the attempt count. Refuses transitions the state machine does
    /// not have.
    fn transition(
        &mut self,
        id: i64,
        to: State,
        step: &str,
        detail: &str,
        extra_sql: &str,
        extra: &[&dyn rusqlite::ToSql],
    ) -> Result<(), LedgerError> {
        let from = self.file(id)?.state;
        if !from.can_go_to(to) {
            return Err(LedgerError::Corrupt {
                path: self.path.clone(),
                id,
                reason: format!("cannot go from {} to {}", from.as_str(), to.as_str()),
            });
        }
        let at = now();
        let path = self.path.clone();
        let fail = |source| LedgerError::Sqlite {
            path: path.clone(),
            what: format!("file {id}: record {step}"),
            source,
        };
        let tx = self.conn.transaction().map_err(fail)?;
        let mut sql = String::from("UPDATE files SET state = ?1, updated_at = ?2, attempts = 0");
        if !extra_sql.is_empty() {
            sql.push_str(", ");
            sql.push_str(extra_sql);
        }
        sql.push_str(" WHERE id = ?3");
        let state = to.as_str();
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&state, &at, &id];
        values.extend_from_slice(extra);
        tx.execute(&sql, values.as_slice()).map_err(fail)?;
        tx.execute(
            "INSERT INTO steps (file_id, step, detail, at) VALUES (?1, ?2, ?3, ?4)",
            params![id, step, detail, at],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)
    }

    /// The rename into `work/` happened.
    pub fn claimed(&mut self, id: i64) -> Result<(), LedgerError> {
        self.transition(id, State::Claimed, "claimed", "", "", &[])
    }

    /// The content hash of the claimed file.
    pub fn hashed(&mut self, id: i64, sha256: &str) -> Result<(), LedgerError> {
        let batch = &sha256[..16.min(sha256.len())];
        self.conn
            .execute(
                "UPDATE files SET sha256 = ?1, batch_id = ?2, updated_at = ?3 WHERE id = ?4",
                params![sha256, batch, now(), id],
            )
            .and_then(|_| self.step(id, "hashed", sha256))
            .map_err(self.err(format!("file {id}: record hash")))
    }

    /// The claimed file changed after its claim (its writer had paused, not finished): its
    /// new size is recorded and its hash forgotten, so that it is hashed and converted again.
    pub fn grew(&mut self, id: i64, bytes: u64) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE files SET bytes = ?1, sha256 = NULL, batch_id = NULL, updated_at = ?2 WHERE id = ?3",
                params![bytes as i64, now(), id],
            )
            .and_then(|_| self.step(id, "changed after claim", &format!("{bytes} bytes")))
            .map_err(self.err(format!("file {id}: record its new size")))
    }

    /// Another file of `product` with the same content that was delivered or is on its way
    /// (any state but failed, duplicate and retried), if there is one.
    pub fn same_content(
        &self,
        product: &str,
        sha256: &str,
        except: i64,
    ) -> Result<Option<FileRecord>, LedgerError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {FILE_COLUMNS} FROM files WHERE product = ?1 AND sha256 = ?2 AND id <> ?3
                     AND state NOT IN ('failed', 'duplicate', 'retried', 'claiming')
                     ORDER BY id LIMIT 1"
                ),
                params![product, sha256, except],
                |r| Ok(read_file(r)),
            )
            .optional()
            .map_err(self.err("look for the same content"))?
            .transpose()
            .map_err(|(id, reason)| self.corrupt(id, reason))
    }

    fn corrupt(&self, id: i64, reason: String) -> LedgerError {
        LedgerError::Corrupt {
            path: self.path.clone(),
            id,
            reason,
        }
    }

    /// Conversion finished: the batch's objects (replacing any of an earlier conversion) and
    /// its announcement.
    pub fn converted(
        &mut self,
        id: i64,
        rows: u64,
        announcement: &str,
        objects: &[ObjectRecord],
    ) -> Result<(), LedgerError> {
        let path = self.path.clone();
        let fail = |source| LedgerError::Sqlite {
            path: path.clone(),
            what: format!("file {id}: record its objects"),
            source,
        };
        {
            let tx = self.conn.transaction().map_err(fail)?;
            tx.execute("DELETE FROM objects WHERE file_id = ?1", params![id])
                .map_err(fail)?;
            for o in objects {
                tx.execute(
                    "INSERT INTO objects (file_id, seq, key, local_path, bytes, sha256)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id,
                        o.seq,
                        o.key,
                        o.local_path.to_string_lossy(),
                        o.bytes as i64,
                        o.sha256
                    ],
                )
                .map_err(fail)?;
            }
            tx.commit().map_err(fail)?;
        }
        let rows = rows as i64;
        self.transition(
            id,
            State::Converted,
            "converted",
            &format!("{} objects", objects.len()),
            "rows = ?4, announcement = ?5",
            &[&rows, &announcement],
        )
    }

    /// The spool lost or changed an object: convert again (same source, same keys).
    pub fn reconvert(&mut self, id: i64, why: &str) -> Result<(), LedgerError> {
        self.transition(id, State::Claimed, "reconvert", why, "", &[])
    }

    /// Object `seq` of file `id` is in the bucket.
    pub fn object_uploaded(&mut self, id: i64, seq: u32) -> Result<(), LedgerError> {
        let at = now();
        self.conn
            .execute(
                "UPDATE objects SET uploaded_at = ?1 WHERE file_id = ?2 AND seq = ?3",
                params![at, id, seq],
            )
            .and_then(|_| {
                let key: String = self.conn.query_row(
                    "SELECT key FROM objects WHERE file_id = ?1 AND seq = ?2",
                    params![id, seq],
                    |r| r.get(0),
                )?;
                self.step(id, "object uploaded", &key)
            })
            .map_err(self.err(format!("file {id}: record upload of object {seq}")))
    }

    /// Every object of file `id` is in the bucket.
    pub fn uploaded(&mut self, id: i64) -> Result<(), LedgerError> {
        let left: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM objects WHERE file_id = ?1 AND uploaded_at IS NULL",
                params![id],
                |r| r.get(0),
            )
            .map_err(self.err(format!("file {id}: count objects left")))?;
        if left > 0 {
            return Err(self.corrupt(id, format!("{left} objects are not uploaded yet")));
        }
        self.transition(id, State::Uploaded, "uploaded", "", "", &[])
    }

    /// The announcement was sent as message `message_id`.
    pub fn announced(&mut self, id: i64, message_id: &str) -> Result<(), LedgerError> {
        self.transition(
            id,
            State::Announced,
            "announced",
            message_id,
            "message_id = ?4",
            &[&message_id],
        )
    }

    /// Where the source is about to go (recorded before the move, so a crash after it is
    /// recognised).
    pub fn set_final_path(&mut self, id: i64, path: Option<&Path>) -> Result<(), LedgerError> {
        self.conn
            .execute(
                "UPDATE files SET final_path = ?1, updated_at = ?2 WHERE id = ?3",
                params![path.map(|p| p.to_string_lossy().into_owned()), now(), id],
            )
            .map(|_| ())
            .map_err(self.err(format!("file {id}: record where it goes")))
    }

    /// Delivered and archived.
    pub fn done(&mut self, id: i64) -> Result<(), LedgerError> {
        self.transition(id, State::Done, "archived", "", "", &[])
    }

    /// The same content as file `of`: archived without announcing.
    pub fn duplicate(&mut self, id: i64, of: i64) -> Result<(), LedgerError> {
        self.transition(
            id,
            State::Duplicate,
            "duplicate",
            &format!("same content as file {of}"),
            "",
            &[],
        )
    }

    /// Refused by the converter (`reason`); moved to the failed folder.
    pub fn failed(&mut self, id: i64, reason: &str) -> Result<(), LedgerError> {
        self.transition(
            id,
            State::Failed,
            "failed",
            reason,
            "last_error = ?4",
            &[&reason],
        )
    }

    /// The failed files of `product` whose source now is at `failed_path` were sent back.
    pub fn retried(&mut self, product: &str, failed_path: &Path) -> Result<usize, LedgerError> {
        let ids: Vec<i64> = {
            let mut st = self
                .conn
                .prepare(
                    "SELECT id FROM files WHERE product = ?1 AND state = 'failed' AND final_path = ?2",
                )
                .map_err(self.err("find failed files"))?;
            st.query_map(params![product, failed_path.to_string_lossy()], |r| {
                r.get(0)
            })
            .and_then(|rows| rows.collect::<Result<Vec<i64>, _>>())
            .map_err(self.err("find failed files"))?
        };
        for &id in &ids {
            self.transition(id, State::Retried, "retried", "", "", &[])?;
        }
        Ok(ids.len())
    }

    /// Records a failed attempt of file `id`'s current step (or of the agent as a whole).
    pub fn record_error(&mut self, id: Option<i64>, message: &str) -> Result<(), LedgerError> {
        let at = now();
        let r = (|| {
            if let Some(id) = id {
                self.conn.execute(
                    "UPDATE files SET attempts = attempts + 1, last_error = ?1, updated_at = ?2 WHERE id = ?3",
                    params![message, at, id],
                )?;
            }
            self.conn.execute(
                "INSERT INTO agent_state (key, value, at) VALUES ('last_error', ?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = excluded.at",
                params![message, at],
            )?;
            Ok(())
        })();
        r.map_err(self.err("record an error"))
    }

    fn step(&self, id: i64, step: &str, detail: &str) -> rusqlite::Result<()> {
        self.conn
            .execute(
                "INSERT INTO steps (file_id, step, detail, at) VALUES (?1, ?2, ?3, ?4)",
                params![id, step, detail, now()],
            )
            .map(|_| ())
    }

    /// File `id`.
    pub fn file(&self, id: i64) -> Result<FileRecord, LedgerError> {
        self.conn
            .query_row(
                &format!("SELECT {FILE_COLUMNS} FROM files WHERE id = ?1"),
                params![id],
                |r| Ok(read_file(r)),
            )
            .map_err(self.err(format!("read file {id}")))?
            .map_err(|(id, reason)| self.corrupt(id, reason))
    }

    fn files_where(&self, condition: &str) -> Result<Vec<FileRecord>, LedgerError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {FILE_COLUMNS} FROM files WHERE {condition} ORDER BY id"
            ))
            .map_err(self.err("list files"))?;
        let rows = st
            .query_map([], |r| Ok(read_file(r)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("list files"))?;
        rows.into_iter()
            .map(|r| r.map_err(|(id, reason)| self.corrupt(id, reason)))
            .collect()
    }

    /// Files in `state`, oldest first.
    pub fn in_state(&self, state: State) -> Result<Vec<FileRecord>, LedgerError> {
        self.files_where(&format!("state = '{}'", state.as_str()))
    }

    /// The oldest file waiting for hashing and conversion.
    pub fn next_to_convert(&self) -> Result<Option<FileRecord>, LedgerError> {
        Ok(self.in_state(State::Claimed)?.into_iter().next())
    }

    /// The oldest converted file not delivered yet (delivery keeps claim order).
    pub fn next_to_deliver(&self) -> Result<Option<FileRecord>, LedgerError> {
        Ok(self
            .files_where("state IN ('converted', 'uploaded', 'announced')")?
            .into_iter()
            .next())
    }

    /// Whether an older file than `id` is still being converted (delivery waits for it).
    pub fn older_unconverted(&self, id: i64) -> Result<bool, LedgerError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM files WHERE id < ?1 AND state IN ('claiming', 'claimed')",
                params![id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(self.err("look for older files"))
    }

    /// The objects of file `id`, by position.
    pub fn objects(&self, id: i64) -> Result<Vec<ObjectRecord>, LedgerError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT seq, key, local_path, bytes, sha256, uploaded_at IS NOT NULL
                 FROM objects WHERE file_id = ?1 ORDER BY seq",
            )
            .map_err(self.err(format!("file {id}: list objects")))?;
        st.query_map(params![id], |r| {
            Ok(ObjectRecord {
                seq: r.get(0)?,
                key: r.get(1)?,
                local_path: PathBuf::from(r.get::<_, String>(2)?),
                bytes: r.get::<_, i64>(3)? as u64,
                sha256: r.get(4)?,
                uploaded: r.get(5)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err(format!("file {id}: list objects")))
    }

    /// The step log of file `id`: (step, detail, at).
    pub fn steps(&self, id: i64) -> Result<Vec<(String, String, String)>, LedgerError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT step, coalesce(detail, ''), at FROM steps WHERE file_id = ?1 ORDER BY id",
            )
            .map_err(self.err(format!("file {id}: list steps")))?;
        st.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(self.err(format!("file {id}: list steps")))
    }

    /// Every file, oldest first.
    pub fn all_files(&self) -> Result<Vec<FileRecord>, LedgerError> {
        self.files_where("1 = 1")
    }

    /// The backlog, counts, last error and last delivery.
    pub fn status(&self) -> Result<LedgerStatus, LedgerError> {
        let backlog = self.files_where(
            "state IN ('claiming', 'claimed', 'converted', 'uploaded', 'announced')",
        )?;
        let backlog_bytes = backlog.iter().map(|f| f.bytes).sum();
        let objects_pending: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM objects o JOIN files f ON f.id = o.file_id
                 WHERE o.uploaded_at IS NULL AND f.state IN ('converted', 'uploaded', 'announced')",
                [],
                |r| r.get(0),
            )
            .map_err(self.err("count pending objects"))?;
        let mut counts = Vec::new();
        {
            let mut st = self
                .conn
                .prepare("SELECT state, count(*) FROM files GROUP BY state ORDER BY min(id)")
                .map_err(self.err("count files"))?;
            let rows: Vec<(String, i64)> = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(self.err("count files"))?;
            for (s, n) in rows {
                if let Some(state) = State::parse(&s) {
                    counts.push((state, n as u64));
                }
            }
        }
        let last_error = self
            .conn
            .query_row(
                "SELECT value, at FROM agent_state WHERE key = 'last_error'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err("read the last error"))?;
        let last_delivered = self.files_where("state = 'done'")?.into_iter().last();
        Ok(LedgerStatus {
            backlog,
            backlog_bytes,
            objects_pending: objects_pending as u64,
            counts,
            last_error,
            last_delivered,
        })
    }
}

/// A `files` row; `Err((id, reason))` for a state this build does not know.
fn read_file(r: &Row<'_>) -> Result<FileRecord, (i64, String)> {
    let get = || -> rusqlite::Result<FileRecord> {
        let state: String = r.get(7)?;
        Ok(FileRecord {
            id: r.get(0)?,
            product: r.get(1)?,
            name: r.get(2)?,
            work_path: PathBuf::from(r.get::<_, String>(3)?),
            bytes: r.get::<_, i64>(4)? as u64,
            sha256: r.get(5)?,
            batch_id: r.get(6)?,
            state: State::parse(&state).unwrap_or(State::Claiming),
            force: r.get(8)?,
            rows: r.get::<_, Option<i64>>(9)?.map(|n| n as u64),
            announcement: r.get(10)?,
            message_id: r.get(11)?,
            final_path: r.get::<_, Option<String>>(12)?.map(PathBuf::from),
            attempts: r.get::<_, i64>(13)? as u32,
            last_error: r.get(14)?,
            claimed_at: r.get(15)?,
            updated_at: r.get(16)?,
        })
    };
    let id: i64 = r.get(0).unwrap_or(-1);
    let state: String = r.get(7).unwrap_or_default();
    if State::parse(&state).is_none() {
        return Err((id, format!("unknown state {state:?}")));
    }
    get().map_err(|e| (id, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> (tempfile::TempDir, Ledger) {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::open(&d.path().join("ledger.sqlite")).unwrap();
        (d, l)
    }

    fn object(seq: u32) -> ObjectRecord {
        ObjectRecord {
            seq,
            key: format!("products/p/year=2026/part-0123456789abcdef-{seq}.parquet"),
            local_path: PathBuf::from(format!("/spool/1/p/part-{seq}")),
            bytes: 10,
            sha256: "a".repeat(64),
            uploaded: false,
        }
    }

    #[test]
    fn schema_is_versioned_and_reopens() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ledger.sqlite");
        assert_eq!(Ledger::open(&p).unwrap().schema_version().unwrap(), 1);
        assert_eq!(Ledger::open(&p).unwrap().schema_version().unwrap(), 1);
        let c = Connection::open(&p).unwrap();
        c.pragma_update(None, "user_version", 9).unwrap();
        drop(c);
        let e = Ledger::open(&p).err().unwrap().to_string();
        assert!(e.contains("schema version 9"), "{e}");
    }

    #[test]
    fn processes_opening_a_new_ledger_at_once_agree_on_the_schema() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ledger.sqlite");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || Ledger::open(&p).map(|l| l.schema_version().unwrap()))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().unwrap(), 1);
        }
    }

    #[test]
    fn a_file_walks_every_step() {
        let (_d, mut l) = ledger();
        let f = l
            .begin_claim("p", "a.csv", 5, false, |id| {
                PathBuf::from(format!("/w/p/{id}"))
            })
            .unwrap();
        assert_eq!(f.state, State::Claiming);
        assert_eq!(f.work_path, PathBuf::from(format!("/w/p/{}/a.csv", f.id)));
        l.claimed(f.id).unwrap();
        assert_eq!(l.next_to_convert().unwrap().unwrap().id, f.id);
        let sha = format!("0123456789abcdef{}", "0".repeat(48));
        l.hashed(f.id, &sha).unwrap();
        l.converted(f.id, 7, "{}", &[object(0), object(1)]).unwrap();
        assert!(l.next_to_convert().unwrap().is_none());
        assert_eq!(l.next_to_deliver().unwrap().unwrap().id, f.id);
        // Not every object is up yet.
        l.object_uploaded(f.id, 0).unwrap();
        assert!(l.uploaded(f.id).is_err());
        l.object_uploaded(f.id, 1).unwrap();
        assert!(l.objects(f.id).unwrap().iter().all(|o| o.uploaded));
        l.uploaded(f.id).unwrap();
        l.announced(f.id, "msg-1").unwrap();
        l.done(f.id).unwrap();
        let f = l.file(f.id).unwrap();
        assert_eq!(f.state, State::Done);
        assert_eq!(f.rows, Some(7));
        assert_eq!(f.batch_id.as_deref(), Some("0123456789abcdef"));
        assert_eq!(f.message_id.as_deref(), Some("msg-1"));
        let steps: Vec<String> = l.steps(f.id).unwrap().into_iter().map(|s| s.0).collect();
        assert_eq!(
            steps,
            [
                "claiming",
                "claimed",
                "hashed",
                "converted",
                "object uploaded",
                "object uploaded",
                "uploaded",
                "announced",
                "archived"
            ]
        );
        assert!(l.next_to_deliver().unwrap().is_none());
        let s = l.status().unwrap();
        assert!(s.backlog.is_empty());
        assert_eq!(s.last_delivered.map(|f| f.id), Some(f.id));
    }

    #[test]
    fn transitions_outside_the_state_machine_are_refused() {
        let (_d, mut l) = ledger();
        let f = l
            .begin_claim("p", "a.csv", 5, false, |_| PathBuf::from("/w"))
            .unwrap();
        assert!(l.announced(f.id, "m").is_err());
        assert!(l.done(f.id).is_err());
        l.claimed(f.id).unwrap();
        assert!(l.uploaded(f.id).is_err());
        assert!(State::Done.next_states().is_empty());
        assert!(State::Converted.can_go_to(State::Claimed));
        assert!(!State::Announced.can_go_to(State::Claimed));
    }

    #[test]
    fn same_content_is_found_except_failed_and_duplicates() {
        let (_d, mut l) = ledger();
        let sha = "b".repeat(64);
        let a = l
            .begin_claim("p", "a.csv", 5, false, |_| PathBuf::from("/w"))
            .unwrap();
        l.claimed(a.id).unwrap();
        l.hashed(a.id, &sha).unwrap();
        let b = l
            .begin_claim("p", "b.csv", 5, false, |_| PathBuf::from("/w"))
            .unwrap();
        l.claimed(b.id).unwrap();
        l.hashed(b.id, &sha).unwrap();
        assert_eq!(
            l.same_content("p", &sha, b.id).unwrap().map(|f| f.id),
            Some(a.id)
        );
        assert!(l.same_content("q", &sha, b.id).unwrap().is_none());
        l.failed(a.id, "bad").unwrap();
        assert!(l.same_content("p", &sha, b.id).unwrap().is_none());
        l.duplicate(b.id, a.id).unwrap();
        let c = l
            .begin_claim("p", "c.csv", 5, false, |_| PathBuf::from("/w"))
            .unwrap();
        assert!(l.same_content("p", &sha, c.id).unwrap().is_none());
    }

    #[test]
    fn errors_and_backlog_show_in_status() {
        let (_d, mut l) = ledger();
        let a = l
            .begin_claim("p", "a.csv", 5, false, |_| PathBuf::from("/w"))
            .unwrap();
        l.claimed(a.id).unwrap();
        l.record_error(Some(a.id), "S3 unreachable").unwrap();
        let s = l.status().unwrap();
        assert_eq!(s.backlog.len(), 1);
        assert_eq!(s.backlog[0].attempts, 1);
        assert_eq!(s.backlog_bytes, 5);
        assert_eq!(
            s.last_error.as_ref().map(|e| e.0.as_str()),
            Some("S3 unreachable")
        );
        assert_eq!(s.counts, vec![(State::Claimed, 1)]);
        // Abandoned claims leave nothing.
        let b = l
            .begin_claim("p", "b.csv", 5, false, |_| PathBuf::from("/w"))
            .unwrap();
        l.abandon_claim(b.id).unwrap();
        assert!(l.file(b.id).is_err());
    }
}
