//! The daemon's state store: one SQLite database (`{state_dir}/syncd.sqlite`, rusqlite with
//! SQLite bundled) recording each announcement handled (producer, product, batch id, outcome,
//! error text, time) and each policy run (`plan`, `apply`, a reload of the policy file), so that
//! `status` can tell what happened without the journal.
//!
//! Owns the schema (versioned with `PRAGMA user_version`; [`SCHEMA_VERSION`]), the records and
//! the summary `status` prints. The store is for operators, not for correctness: SQS holds the
//! work (a message is deleted only after its work succeeded), so a record that cannot be written
//! is logged and the work goes on. WAL mode: `status` reads while the service writes. Files the
//! store creates (the database and its `-wal`/`-shm` companions) are given the state
//! directory's owner, so that `plan` or `status` run as root leave nothing the service cannot
//! write. Rows
//! beyond the newest [`KEEP_ROWS`] of each table are pruned when the service opens the store.
//!
//! Does not own the queues (their depth is read by `status` in `commands`) nor the policy.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use serde::Serialize;

/// The schema this build writes; newer databases are refused.
pub const SCHEMA_VERSION: i64 = 1;
/// The database file in the state directory.
pub const FILE_NAME: &str = "syncd.sqlite";
/// Rows kept per table (the oldest beyond this are pruned when the service starts).
pub const KEEP_ROWS: i64 = 100_000;

const SCHEMA_V1: &str = "
CREATE TABLE announcements (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    message_id  TEXT NOT NULL,
    producer    TEXT,
    product     TEXT,
    batch_id    TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('accepted', 'rejected', 'failed')),
    error       TEXT
);
CREATE INDEX announcements_outcome ON announcements (outcome, id);
CREATE TABLE policy_runs (
    id             INTEGER PRIMARY KEY,
    at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    kind           TEXT NOT NULL CHECK (kind IN ('plan', 'apply', 'reload')),
    policy_sha256  TEXT NOT NULL,
    changes        INTEGER,
    outcome        TEXT NOT NULL CHECK (outcome IN ('ok', 'error')),
    error          TEXT
);
CREATE INDEX policy_runs_kind ON policy_runs (kind, outcome, id);
";

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state directory cannot be created.
    #[error("state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// SQLite refused an operation.
    #[error("state {path}: {what}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database was written by a newer daemon.
    #[error(
        "state {path}: schema version {found} is newer than this daemon's ({SCHEMA_VERSION}); upgrade lakemesh-syncd"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` found.
        found: i64,
    },
}

/// What became of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Validated, cataloged and governed; the message was deleted.
    Accepted,
    /// Refused at the validation boundary (an audit event); nothing changed.
    Rejected,
    /// Its work failed (left for a retry or the dead-letter queue).
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "accepted" => Self::Accepted,
            "rejected" => Self::Rejected,
            _ => Self::Failed,
        }
    }
}

/// A policy run's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// `lakemesh-syncd plan`.
    Plan,
    /// `lakemesh-syncd apply` (every managed table).
    Apply,
    /// The service re-read the policy file (SIGHUP).
    Reload,
}

impl RunKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Apply => "apply",
            Self::Reload => "reload",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "plan" => Self::Plan,
            "apply" => Self::Apply,
            _ => Self::Reload,
        }
    }
}

/// One announcement handled, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnouncementRecord {
    /// When it was recorded (UTC, RFC 3339 with milliseconds).
    pub at: String,
    /// SQS message id.
    pub message_id: String,
    /// The producer it names (`None` when unreadable).
    pub producer: Option<String>,
    /// The product it names.
    pub product: Option<String>,
    /// Its `announcement_id` (the batch id).
    pub batch_id: Option<String>,
    /// What became of it.
    pub outcome: Outcome,
    /// Why it was rejected or failed.
    pub error: Option<String>,
}

/// One policy run, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRun {
    /// When (UTC).
    pub at: String,
    /// What ran.
    pub kind: RunKind,
    /// SHA-256 of the policy file's bytes it ran with.
    pub policy_sha256: String,
    /// Changes planned or applied.
    pub changes: Option<u64>,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// What `status` shows from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Messages accepted (among the recorded ones; a message received again counts once).
    pub accepted: u64,
    /// Messages rejected (a poison message is rejected at each receive, counted once).
    pub rejected: u64,
    /// Messages whose work failed at least once (also counted as accepted if a retry succeeded).
    pub failed: u64,
    /// The last accepted announcement.
    pub last_success: Option<AnnouncementRecord>,
    /// The newest rejected or failed announcements, newest first.
    pub recent_failures: Vec<AnnouncementRecord>,
    /// The last failed policy run.
    pub last_policy_error: Option<PolicyRun>,
    /// The last successful `apply`.
    pub last_apply: Option<PolicyRun>,
    /// The last successful `plan`.
    pub last_plan: Option<PolicyRun>,
}

/// The store. Writes are short and serialised by a mutex (the service records one row per
/// finished message).
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn sqlite_err(path: &Path, what: &str) -> impl FnOnce(rusqlite::Error) -> StateError {
    let path = path.to_path_buf();
    let what = what.to_owned();
    move |source| StateError::Sqlite { path, what, source }
}

impl StateStore {
    /// Opens (creating the directory, the file and the schema when needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let conn = Connection::open(&path).map_err(sqlite_err(&path, "open"))?;
        let store = Self::prepare(conn, path, true)?;
        store.adopt_owner();
        Ok(store)
    }

    /// Opens an existing store without creating anything; `None` when there is none yet (the
    /// service never ran with this state directory).
    pub fn open_existing(dir: &Path) -> Result<Option<Self>, StateError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_err(&path, "open"))?;
        let store = Self::prepare(conn, path, false)?;
        store.adopt_owner();
        Ok(Some(store))
    }

    /// Gives the database files the state directory's owner where they differ (root running
    /// `plan` beside the service's user). Only root can; for anyone else this changes nothing.
    fn adopt_owner(&self) {
        use std::os::unix::fs::MetadataExt;
        let Some(dir) = self.path.parent().and_then(|d| std::fs::metadata(d).ok()) else {
            return;
        };
        let mut files = vec![self.path.clone()];
        for suffix in ["-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            files.push(p.into());
        }
        for f in files {
            if let Ok(m) = std::fs::metadata(&f)
                && (m.uid() != dir.uid() || m.gid() != dir.gid())
                && let Err(e) = std::os::unix::fs::chown(&f, Some(dir.uid()), Some(dir.gid()))
            {
                log::debug!("state {}: owner not changed: {e}", f.display());
            }
        }
    }

    fn prepare(conn: Connection, path: PathBuf, create: bool) -> Result<Self, StateError> {
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(sqlite_err(&path, "set busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite_err(&path, "enable WAL"))?;
        let read_version = |conn: &Connection| -> Result<i64, StateError> {
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(sqlite_err(&path, "read schema version"))
        };
        let mut version = read_version(&conn)?;
        if version < 1 && create {
            // Under the write lock, and read again: a `plan` beside the first `run` may have
            // created the schema in the meantime.
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(sqlite_err(&path, "lock for the schema"))?;
            let migrated = (|| {
                version = read_version(&conn)?;
                if version < 1 {
                    conn.execute_batch(&format!("{SCHEMA_V1} PRAGMA user_version = 1;"))
                        .map_err(sqlite_err(&path, "create schema version 1"))?;
                    version = 1;
                }
                Ok::<(), StateError>(())
            })();
            let end = if migrated.is_ok() {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            conn.execute_batch(end)
                .map_err(sqlite_err(&path, "end the schema change"))?;
            migrated?;
        }
        if version > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path,
                found: version,
            });
        }
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn).map_err(sqlite_err(&self.path, what))
    }

    /// Deletes the rows older than the newest [`KEEP_ROWS`] of each table.
    pub fn prune(&self) -> Result<(), StateError> {
        self.with("prune", |c| {
            for table in ["announcements", "policy_runs"] {
                c.execute(
                    &format!("DELETE FROM {table} WHERE id <= (SELECT max(id) FROM {table}) - ?1"),
                    params![KEEP_ROWS],
                )?;
            }
            Ok(())
        })
    }

    /// Records an announcement handled.
    pub fn record_announcement(
        &self,
        message_id: &str,
        producer: Option<&str>,
        product: Option<&str>,
        batch_id: Option<&str>,
        outcome: Outcome,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        self.with("record an announcement", |c| {
            c.execute(
                "INSERT INTO announcements (message_id, producer, product, batch_id, outcome, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    message_id,
                    producer,
                    product,
                    batch_id,
                    outcome.as_str(),
                    error
                ],
            )
            .map(drop)
        })?;
        self.adopt_owner();
        Ok(())
    }

    /// Records a policy run.
    pub fn record_policy_run(
        &self,
        kind: RunKind,
        policy_sha256: &str,
        changes: Option<u64>,
        error: Option<&str>,
    ) -> Result<(), StateError> {
        self.with("record a policy run", |c| {
            c.execute(
                "INSERT INTO policy_runs (kind, policy_sha256, changes, outcome, error)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    kind.as_str(),
                    policy_sha256,
                    changes.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                    if error.is_some() { "error" } else { "ok" },
                    error
                ],
            )
            .map(drop)
        })?;
        self.adopt_owner();
        Ok(())
    }

    /// Counts, the last success, the newest `failures` rejected or failed announcements, and
    /// the last policy runs.
    pub fn summary(&self, failures: usize) -> Result<Summary, StateError> {
        self.with("read the summary", |c| {
            let mut s = Summary::default();
            let mut counts =
                c.prepare("SELECT outcome, count(DISTINCT message_id) FROM announcements GROUP BY outcome")?;
            let rows = counts.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (outcome, n) = row?;
                let n = u64::try_from(n).unwrap_or(0);
                match Outcome::parse(&outcome) {
                    Outcome::Accepted => s.accepted = n,
                    Outcome::Rejected => s.rejected = n,
                    Outcome::Failed => s.failed = n,
                }
            }
            const COLS: &str = "at, message_id, producer, product, batch_id, outcome, error";
            s.last_success = c
                .query_row(
                    &format!(
                        "SELECT {COLS} FROM announcements WHERE outcome = 'accepted' ORDER BY id DESC LIMIT 1"
                    ),
                    [],
                    announcement_row,
                )
                .optional()?;
            let mut recent = c.prepare(&format!(
                "SELECT {COLS} FROM announcements WHERE outcome != 'accepted' ORDER BY id DESC LIMIT ?1"
            ))?;
            s.recent_failures = recent
                .query_map(
                    params![i64::try_from(failures).unwrap_or(i64::MAX)],
                    announcement_row,
                )?
                .collect::<rusqlite::Result<_>>()?;
            const RUN: &str = "SELECT at, kind, policy_sha256, changes, outcome, error FROM policy_runs";
            s.last_policy_error = c
                .query_row(
                    &format!("{RUN} WHERE outcome = 'error' ORDER BY id DESC LIMIT 1"),
                    [],
                    run_row,
                )
                .optional()?;
            s.last_apply = c
                .query_row(
                    &format!("{RUN} WHERE kind = 'apply' AND outcome = 'ok' ORDER BY id DESC LIMIT 1"),
                    [],
                    run_row,
                )
                .optional()?;
            s.last_plan = c
                .query_row(
                    &format!("{RUN} WHERE kind = 'plan' AND outcome = 'ok' ORDER BY id DESC LIMIT 1"),
                    [],
                    run_row,
                )
                .optional()?;
            Ok(s)
        })
    }
}

fn announcement_row(r: &Row<'_>) -> rusqlite::Result<AnnouncementRecord> {
    Ok(AnnouncementRecord {
        at: r.get(0)?,
        message_id: r.get(1)?,
        producer: r.get(2)?,
        product: r.get(3)?,
        batch_id: r.get(4)?,
        outcome: Outcome::parse(&r.get::<_, String>(5)?),
        error: r.get(6)?,
    })
}

fn run_row(r: &Row<'_>) -> rusqlite::Result<PolicyRun> {
    Ok(PolicyRun {
        at: r.get(0)?,
        kind: RunKind::parse(&r.get::<_, String>(1)?),
        policy_sha256: r.get(2)?,
        changes: r
            .get::<_, Option<i64>>(3)?
            .map(|n| u64::try_from(n).unwrap_or(0)),
        ok: r.get::<_, String>(4)? == "ok",
        error: r.get(5)?,
    })
}

/// SHA-256 (hex) of a policy file's bytes, as recorded with each policy run.
pub fn policy_sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_summarises() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state")).unwrap();
        store
            .record_announcement(
                "m1",
                Some("chu"),
                Some("stays"),
                Some("b1"),
                Outcome::Accepted,
                None,
            )
            .unwrap();
        store
            .record_announcement(
                "m2",
                Some("chu"),
                None,
                Some("b2"),
                Outcome::Rejected,
                Some("bad sender"),
            )
            .unwrap();
        store
            .record_announcement(
                "m3",
                Some("chu"),
                Some("stays"),
                Some("b3"),
                Outcome::Failed,
                Some("crawl failed"),
            )
            .unwrap();
        // the same poison message received again: one more event, not one more message
        store
            .record_announcement(
                "m2",
                Some("chu"),
                None,
                Some("b2"),
                Outcome::Rejected,
                Some("bad sender"),
            )
            .unwrap();
        store
            .record_policy_run(RunKind::Apply, "aa", Some(3), None)
            .unwrap();
        store
            .record_policy_run(RunKind::Reload, "bb", None, Some("grant #1: bad"))
            .unwrap();
        let s = store.summary(1).unwrap();
        assert_eq!((s.accepted, s.rejected, s.failed), (1, 1, 1));
        assert_eq!(s.last_success.unwrap().batch_id.as_deref(), Some("b1"));
        assert_eq!(s.recent_failures.len(), 1);
        assert_eq!(s.recent_failures[0].message_id, "m2");
        assert_eq!(s.last_apply.unwrap().policy_sha256, "aa");
        assert_eq!(
            s.last_policy_error.unwrap().error.as_deref(),
            Some("grant #1: bad")
        );
        assert!(s.last_plan.is_none());
        let s = store.summary(10).unwrap();
        assert_eq!(
            s.recent_failures
                .iter()
                .map(|r| r.message_id.as_str())
                .collect::<Vec<_>>(),
            ["m2", "m3", "m2"]
        );
        assert!(
            s.recent_failures[0].at.ends_with('Z'),
            "{:?}",
            s.recent_failures[0]
        );
    }

    #[test]
    fn a_missing_store_is_not_created_by_readers() {
        let dir = tempfile::tempdir().unwrap();
        assert!(StateStore::open_existing(dir.path()).unwrap().is_none());
        assert!(!dir.path().join(FILE_NAME).exists());
        StateStore::open(dir.path()).unwrap();
        let again = StateStore::open_existing(dir.path()).unwrap().unwrap();
        assert_eq!(again.summary(5).unwrap(), Summary::default());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateStore::open(dir.path()).unwrap());
        let c = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        c.pragma_update(None, "user_version", 9).unwrap();
        drop(c);
        let e = StateStore::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("schema version 9 is newer"), "{e}");
    }

    #[test]
    fn prune_keeps_the_newest_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        for i in 0..3 {
            store
                .record_announcement(&format!("m{i}"), None, None, None, Outcome::Rejected, None)
                .unwrap();
        }
        store.prune().unwrap();
        assert_eq!(store.summary(10).unwrap().rejected, 3);
    }
}
