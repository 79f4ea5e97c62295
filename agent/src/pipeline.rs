//! The delivery steps of one claimed file, in order: claim (rename into `work/`), hash, convert
//! into the spool (or recognise the same content, or refuse the file), upload every object,
//! announce, archive. Each step is recorded in the ledger before the next starts, and each step
//! can be started again from what the ledger says, so a process killed anywhere resumes.
//!
//! Owns [`Agent`] (configuration, folders, ledger, AWS adapters) and the steps
//! ([`Agent::claim`], [`Agent::prepare`], [`Agent::deliver`]), the moves into `failed/` and
//! `archive/`, and archive retention. Does not own scheduling, signals or retry timing
//! ([`crate::service`]), nor the conversion ([`crate::convert`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use lakemesh_shared::announcement::Announcement;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::announce::{self, AnnounceError, Origin};
use crate::config::AgentConfig;
use crate::convert::{ConvertError, ConvertOptions, convert_file, write_atomic};
use crate::decode::DecodeError;
use crate::failpoint;
use crate::layout::{self, Layout};
use crate::ledger::{FileRecord, Ledger, LedgerError, ObjectRecord, State};
use crate::pii::PseudonymKey;
use crate::s3::S3;
use crate::sqs::Sqs;
use crate::upload::{self, UploadError, UploadSettings, object_key};

/// Why a step did not complete.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The ledger could not be read or written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A file operation failed.
    #[error("{}: {what}: {source}", .path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The conversion failed for a reason that may pass (disk full, a read error).
    #[error("{file}: conversion: {source}")]
    Convert {
        /// The file's name.
        file: String,
        /// The converter's error.
        source: ConvertError,
    },
    /// An object did not reach the bucket.
    #[error("file {id} ({file}): {source}")]
    Upload {
        /// Ledger id.
        id: i64,
        /// The file's name.
        file: String,
        /// What failed.
        source: Box<UploadError>,
    },
    /// The announcement could not be sent.
    #[error("file {id} ({file}): {source}")]
    Announce {
        /// Ledger id.
        id: i64,
        /// The file's name.
        file: String,
        /// What failed.
        source: Box<AnnounceError>,
    },
    /// The pseudonym key could not be loaded.
    #[error("{0}")]
    Key(String),
    /// The batch was sent back to conversion before any upload (its source or the
    /// configuration changed).
    #[error("file {id} ({file}): {why}; converting it again")]
    Reconvert {
        /// Ledger id.
        id: i64,
        /// The file's name.
        file: String,
        /// Why.
        why: String,
    },
    /// The claimed file changed while it was converted: its writer had only paused.
    #[error(
        "file {id} ({file}) is still being written ({before} bytes when claimed or last converted, {after} now): it is converted again once it stops changing; export jobs should write under a temporary name and rename, or write a marker"
    )]
    StillWritten {
        /// Ledger id.
        id: i64,
        /// The file's name.
        file: String,
        /// Size the conversion started from.
        before: u64,
        /// Size after it.
        after: u64,
    },
    /// Shutdown was asked for; the step will run again on the next start.
    #[error("interrupted by shutdown")]
    Cancelled,
}

impl PipelineError {
    /// Whether the same step may succeed later without anyone acting.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Ledger(e) => e.is_transient(),
            Self::Io { .. }
            | Self::Convert { .. }
            | Self::Cancelled
            | Self::StillWritten { .. }
            | Self::Reconvert { .. } => true,
            Self::Upload { source, .. } => source.is_transient(),
            Self::Announce { source, .. } => source.is_transient(),
            Self::Key(_) => false,
        }
    }
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> PipelineError + 'a {
    move |source| PipelineError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// What preparing a claimed file came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// Converted: the batch waits in the spool.
    Converted,
    /// The same content was delivered already (or is on its way): archived, not announced.
    Duplicate {
        /// The earlier file's id.
        of: i64,
    },
    /// The converter refused it: it is in `failed/` with its report.
    Failed {
        /// Where the file went.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What a delivered batch amounted to (the INFO line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The product.
    pub product: String,
    /// The batch id.
    pub batch_id: String,
    /// Rows.
    pub rows: u64,
    /// Objects.
    pub objects: usize,
    /// Bytes of the objects.
    pub bytes: u64,
    /// The SQS message id.
    pub message_id: String,
}

/// One agent: configuration, folders, ledger and AWS adapters. Cheap to clone (shared ledger).
#[derive(Clone)]
pub struct Agent {
    /// The configuration.
    pub cfg: Arc<AgentConfig>,
    /// Its folders.
    pub layout: Layout,
    ledger: Arc<Mutex<Ledger>>,
    s3: S3,
    sqs: Sqs,
}

/// How errors in the converter map to the folder protocol: refused files go to `failed/`.
fn is_refusal(e: &ConvertError) -> bool {
    match e {
        ConvertError::Rejected(_)
        | ConvertError::KeyMissing { .. }
        | ConvertError::Discovery { .. }
        | ConvertError::DiscoveryFailed { .. } => true,
        ConvertError::Decode(d) => !matches!(d, DecodeError::Io { .. }),
        ConvertError::Io { .. } | ConvertError::Output { .. } => false,
    }
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

impl Agent {
    /// An agent for `cfg` with AWS clients from `sdk`; opens the ledger and creates the folders.
    pub fn new(
        cfg: AgentConfig,
        sdk: &lakemesh_shared::aws::SdkConfig,
    ) -> Result<Self, PipelineError> {
        let layout = Layout::new(&cfg);
        layout
            .create_all()
            .map_err(io_err(&layout.state_dir, "create the state folders"))?;
        let ledger = Ledger::open(&layout.ledger())?;
        let s3 = S3::new(lakemesh_shared::aws::s3_client(sdk, &cfg.aws), &cfg.bucket);
        let sqs = Sqs::new(aws_sdk_sqs::Client::new(sdk), &cfg.queue_url);
        Ok(Self {
            cfg: Arc::new(cfg),
            layout,
            ledger: Arc::new(Mutex::new(ledger)),
            s3,
            sqs,
        })
    }

    /// The ledger (a poisoned lock is still a consistent database: every change is a
    /// transaction).
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The S3 adapter.
    pub fn s3(&self) -> &S3 {
        &self.s3
    }

    /// The SQS adapter.
    pub fn sqs(&self) -> &Sqs {
        &self.sqs
    }

    /// Claims `source` for `product`: a ledger row, then the move (a copy when `copy`, for
    /// `ingest`) into `work/{product}/{id}/`, then `claimed`. Its marker, if any, is removed.
    /// `Ok(None)` when the file vanished before it could be moved.
    pub fn claim(
        &self,
        product: &str,
        source: &Path,
        force: bool,
        copy: bool,
    ) -> Result<Option<FileRecord>, PipelineError> {
        let name = source
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| PipelineError::Io {
                path: source.to_path_buf(),
                what: "claim",
                source: io::Error::other("the file name is not UTF-8"),
            })?
            .to_owned();
        let bytes = std::fs::metadata(source)
            .map_err(io_err(source, "claim"))?
            .len();
        let layout = self.layout.clone();
        let rec = self
            .ledger()
            .begin_claim(product, &name, bytes, force, |id| {
                layout.work_dir(product, id)
            })?;
        let moved = if copy {
            layout::copy_durably(source, &rec.work_path)
        } else {
            layout::move_file(source, &rec.work_path)
        };
        if let Err(e) = moved {
            self.ledger().abandon_claim(rec.id)?;
            let _ = std::fs::remove_dir_all(self.layout.work_dir(product, rec.id));
            if e.kind() == io::ErrorKind::NotFound {
                return Ok(None);
            }
            return Err(PipelineError::Io {
                path: source.to_path_buf(),
                what: "claim (move into work/)",
                source: e,
            });
        }
        failpoint::hit("after-claim");
        self.ledger().claimed(rec.id)?;
        if !copy && let Some(dir) = source.parent() {
            for m in crate::watch::marker_paths(dir, &name) {
                let _ = std::fs::remove_file(m);
            }
        }
        log::info!(
            product = product, file = name.as_str(), id = rec.id;
            "claimed {name} for {product} (file {}, {bytes} bytes)", rec.id
        );
        Ok(Some(self.ledger().file(rec.id)?))
    }

    /// After a restart: claims whose move did or did not happen become `claimed` or vanish.
    pub fn recover_claims(&self) -> Result<(), PipelineError> {
        let claiming = self.ledger().in_state(State::Claiming)?;
        for rec in claiming {
            if rec.work_path.exists() {
                self.ledger().claimed(rec.id)?;
                log::info!(
                    "file {} ({}): claim completed after a restart",
                    rec.id,
                    rec.name
                );
            } else {
                self.ledger().abandon_claim(rec.id)?;
                let _ = std::fs::remove_dir_all(self.layout.work_dir(&rec.product, rec.id));
            }
        }
        Ok(())
    }

    /// Hashes a claimed file, recognises content already delivered, converts it into the
    /// spool (or moves it to `failed/` when the converter refuses it).
    pub async fn prepare(
        &self,
        rec: &FileRecord,
        cancel: &CancellationToken,
    ) -> Result<Prepared, PipelineError> {
        let contract = match self.cfg.product(&rec.product) {
            Ok(c) => c.clone(),
            Err(e) => {
                return self.refuse(rec, &e.to_string(), None);
            }
        };
        // A writer that paused longer than settle_secs keeps appending to the claimed file (a
        // rename keeps its open handle): every conversion starts from what the file is now and
        // ends by checking that it did not change meanwhile.
        let stamp = |path: &Path| {
            std::fs::metadata(path)
                .map(|m| (m.len(), m.modified().ok()))
                .map_err(io_err(path, "look at the claimed file"))
        };
        let started = stamp(&rec.work_path)?;
        let mut known_sha = rec.sha256.clone();
        if started.0 != rec.bytes {
            self.ledger().grew(rec.id, started.0)?;
            known_sha = None;
        }
        let sha = match &known_sha {
            Some(s) => s.clone(),
            None => {
                let path = rec.work_path.clone();
                let sha = run_blocking(cancel, move || sha256_file(&path))
                    .await?
                    .map_err(io_err(&rec.work_path, "hash"))?;
                self.ledger().hashed(rec.id, &sha)?;
                sha
            }
        };
        if !rec.force {
            let same = self.ledger().same_content(&rec.product, &sha, rec.id)?;
            if let Some(earlier) = same {
                self.archive(rec)?;
                self.ledger().duplicate(rec.id, earlier.id)?;
                self.cleanup(rec);
                log::info!(
                    product = rec.product.as_str(), file = rec.name.as_str(), batch = &sha[..16];
                    "{}: same content as file {} ({}, batch {}): archived, not announced again \
                     (ingest --force sends it again)",
                    rec.name, earlier.id, earlier.name, &sha[..16]
                );
                return Ok(Prepared::Duplicate { of: earlier.id });
            }
        }
        let key = match &self.cfg.pseudonym_key_file {
            Some(k) if contract.needs_pseudonym_key() => {
                Some(PseudonymKey::load(k).map_err(|e| PipelineError::Key(e.to_string()))?)
            }
            _ => None,
        };
        let spool = self.layout.spool(rec.id);
        if spool.exists() {
            std::fs::remove_dir_all(&spool).map_err(io_err(&spool, "clear the spool"))?;
        }
        let work_dir = self.layout.work_dir(&rec.product, rec.id);
        let mut opts = ConvertOptions::new(&spool);
        opts.report_dir = work_dir.clone();
        opts.key = key;
        opts.threads = self.cfg.service.convert_threads;
        opts.memory_budget_bytes = self.cfg.service.convert_memory_bytes;
        let input = rec.work_path.clone();
        let c = contract.clone();
        let result = run_blocking(cancel, move || convert_file(&c, &input, &opts)).await?;
        let report = match result {
            Ok(r) => r,
            Err(e) if is_refusal(&e) => {
                // A half-written last record is not the export's fault yet.
                let ended = stamp(&rec.work_path)?;
                if ended != started {
                    self.ledger().grew(rec.id, ended.0)?;
                    let _ = std::fs::remove_dir_all(&spool);
                    return Err(PipelineError::StillWritten {
                        id: rec.id,
                        file: rec.name.clone(),
                        before: started.0,
                        after: ended.0,
                    });
                }
                return self.refuse(rec, &e.to_string(), Some(&work_dir));
            }
            Err(source) => {
                return Err(PipelineError::Convert {
                    file: rec.name.clone(),
                    source,
                });
            }
        };
        let ended = stamp(&rec.work_path)?;
        if ended != started {
            self.ledger().grew(rec.id, ended.0)?;
            let _ = std::fs::remove_dir_all(&spool);
            return Err(PipelineError::StillWritten {
                id: rec.id,
                file: rec.name.clone(),
                before: started.0,
                after: ended.0,
            });
        }
        let origin = Origin {
            producer_id: &self.cfg.producer_id,
            bucket: &self.cfg.bucket,
            prefix: &self.cfg.prefix,
        };
        let a = match announce::build(&origin, &report.manifest, &rec.name) {
            Ok(a) => a,
            Err(e) => return self.refuse(rec, &e.to_string(), Some(&work_dir)),
        };
        if let Some(rejects) = &report.rejects_file {
            let dest = layout::free_name(
                &self
                    .layout
                    .failed_dir(&rec.product)
                    .join(format!("{}.rejects.csv", rec.name)),
            );
            layout::move_file(rejects, &dest).map_err(io_err(rejects, "move the rejects"))?;
            log::warn!(
                product = rec.product.as_str(), file = rec.name.as_str();
                "{}: {} rows quarantined in {}", rec.name, report.rows_rejected, dest.display()
            );
        }
        let objects: Vec<ObjectRecord> = report
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| ObjectRecord {
                seq: i as u32,
                key: object_key(&self.cfg.prefix, &o.key),
                local_path: spool.join(&o.key),
                bytes: o.bytes,
                sha256: o.sha256.clone(),
                uploaded: false,
            })
            .collect();
        failpoint::hit("after-convert");
        self.ledger()
            .converted(rec.id, report.rows_written, &a.to_json(), &objects)?;
        log::info!(
            product = rec.product.as_str(), file = rec.name.as_str(), batch = report.batch_id.as_str();
            "converted {}: {} rows, {} objects, batch {}",
            rec.name, report.rows_written, objects.len(), report.batch_id
        );
        Ok(Prepared::Converted)
    }

    /// Moves a refused file and its reports to `failed/{product}/` and records why.
    fn refuse(
        &self,
        rec: &FileRecord,
        reason: &str,
        reports: Option<&Path>,
    ) -> Result<Prepared, PipelineError> {
        let failed = self.layout.failed_dir(&rec.product);
        let dest = layout::free_name(&failed.join(&rec.name));
        let dest_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The converter names its report where it wrote it, in work/: say where it will be.
        let reason_text = match reports {
            Some(dir) => reason.replace(
                &dir.join(format!("{}.error.json", rec.name))
                    .display()
                    .to_string(),
                &failed
                    .join(format!("{dest_name}.error.json"))
                    .display()
                    .to_string(),
            ),
            None => reason.to_owned(),
        };
        let reason = reason_text.as_str();
        self.ledger().set_final_path(rec.id, Some(&dest))?;
        // Reports first: the file's arrival in failed/ says the failure is complete.
        let mut have_report = false;
        if let Some(dir) = reports {
            for (from, to) in [
                (
                    format!("{}.error.json", rec.name),
                    format!("{dest_name}.error.json"),
                ),
                (
                    format!("{}.contract.toml", rec.product),
                    format!("{dest_name}.contract.toml"),
                ),
            ] {
                let from = dir.join(from);
                if from.exists() {
                    layout::move_file(&from, &failed.join(&to))
                        .map_err(io_err(&from, "move the report to failed/"))?;
                    have_report |= to.ends_with(".error.json");
                }
            }
        }
        if !have_report {
            let report = serde_json::json!({
                "version": 1, "file": rec.name, "product": rec.product,
                "outcome": "refused", "reason": reason,
            });
            let path = failed.join(format!("{dest_name}.error.json"));
            write_atomic(
                &path,
                &serde_json::to_vec_pretty(&report).unwrap_or_default(),
            )
            .map_err(io_err(&path, "write the error report"))?;
        }
        if rec.work_path.exists() {
            layout::move_file(&rec.work_path, &dest)
                .map_err(io_err(&rec.work_path, "move to failed/"))?;
        }
        self.ledger().failed(rec.id, reason)?;
        self.cleanup(rec);
        log::error!(
            product = rec.product.as_str(), file = rec.name.as_str();
            "{} refused, moved to {}: {reason} (fix the export or the contract, then `lakemesh-agent retry --product {}`)",
            rec.name, dest.display(), rec.product
        );
        Ok(Prepared::Failed {
            path: dest,
            reason: reason.to_owned(),
        })
    }

    /// Removes the file's work folder and spool.
    fn cleanup(&self, rec: &FileRecord) {
        let _ = std::fs::remove_dir_all(self.layout.work_dir(&rec.product, rec.id));
        let _ = std::fs::remove_dir_all(self.layout.spool(rec.id));
    }

    /// Moves the source to the archive (or deletes it with `archive_retention_days = 0`),
    /// recording the destination first. Done already when the source is gone.
    fn archive(&self, rec: &FileRecord) -> Result<(), PipelineError> {
        if self.cfg.service.archive_retention_days == 0 {
            if rec.work_path.exists() {
                std::fs::remove_file(&rec.work_path)
                    .map_err(io_err(&rec.work_path, "delete the delivered source"))?;
            }
            return Ok(());
        }
        let dest = match &rec.final_path {
            Some(p) => p.clone(),
            None => {
                let dir = self.layout.archive_dir(&rec.product, &layout::today());
                let d = layout::free_name(&dir.join(format!("{}-{}", rec.id, rec.name)));
                self.ledger().set_final_path(rec.id, Some(&d))?;
                d
            }
        };
        if rec.work_path.exists() {
            layout::move_file(&rec.work_path, &dest)
                .map_err(io_err(&rec.work_path, "move to the archive"))?;
        }
        Ok(())
    }

    /// Uploads what is not in the bucket yet, announces, archives: from whatever step the
    /// ledger shows. Returns the delivery's figures.
    pub async fn deliver(
        &self,
        rec: &FileRecord,
        cancel: &CancellationToken,
    ) -> Result<Delivered, PipelineError> {
        let id = rec.id;
        let mut state = rec.state;
        if state == State::Converted {
            let objects = self.ledger().objects(id)?;
            if !objects.iter().any(|o| o.uploaded) {
                // Nothing is in the bucket yet: a batch that no longer matches its source or
                // the configuration is converted again rather than sent as it is.
                let now = std::fs::metadata(&rec.work_path)
                    .map(|m| m.len())
                    .map_err(io_err(&rec.work_path, "look at the claimed file"))?;
                let why = if now != rec.bytes {
                    self.ledger().grew(id, now)?;
                    Some(format!(
                        "the file changed after its conversion ({} bytes, now {now}): its writer had not finished",
                        rec.bytes
                    ))
                } else {
                    self.origin_changed(rec)?
                };
                if let Some(why) = why {
                    log::warn!("file {id} ({}): {why}; converting it again", rec.name);
                    self.ledger().reconvert(id, &why)?;
                    return Err(PipelineError::Reconvert {
                        id,
                        file: rec.name.clone(),
                        why,
                    });
                }
            }
            let pending: Vec<ObjectRecord> = objects.into_iter().filter(|o| !o.uploaded).collect();
            let settings = UploadSettings::from_service(&self.cfg.service);
            let result = upload::upload_all(&self.s3, pending, &settings, cancel, |o| {
                failpoint::hit(&format!("after-upload-{}", o.seq + 1));
                self.ledger()
                    .object_uploaded(id, o.seq)
                    .map_err(|e| UploadError::Read {
                        path: self.layout.ledger(),
                        key: o.key.clone(),
                        source: io::Error::other(e.to_string()),
                    })?;
                log::debug!("s3://{}/{}: uploaded", self.s3.bucket(), o.key);
                Ok(())
            })
            .await;
            match result {
                Ok(()) => {}
                Err(e) if e.needs_reconversion() => {
                    log::warn!("file {id} ({}): {e}; converting it again", rec.name);
                    self.ledger().reconvert(id, &e.to_string())?;
                    return Err(PipelineError::Upload {
                        id,
                        file: rec.name.clone(),
                        source: Box::new(e),
                    });
                }
                Err(UploadError::Cancelled { .. }) => return Err(PipelineError::Cancelled),
                Err(source) => {
                    return Err(PipelineError::Upload {
                        id,
                        file: rec.name.clone(),
                        source: Box::new(source),
                    });
                }
            }
            self.ledger().uploaded(id)?;
            state = State::Uploaded;
        }
        if cancel.is_cancelled() {
            return Err(PipelineError::Cancelled);
        }
        let announce_err = |source| PipelineError::Announce {
            id,
            file: rec.name.clone(),
            source: Box::new(source),
        };
        let json = rec.announcement.clone().unwrap_or_default();
        let a = Announcement::from_json(json.as_bytes())
            .map_err(|e| announce_err(AnnounceError::Invalid(e)))?;
        let mut message_id = rec.message_id.clone().unwrap_or_default();
        if state == State::Uploaded {
            let sent = announce::send(&self.s3, &self.sqs, &a, || {
                failpoint::hit("after-manifest");
            })
            .await
            .map_err(announce_err)?;
            failpoint::hit("after-announce");
            self.ledger().announced(id, &sent.message_id)?;
            message_id = sent.message_id;
            state = State::Announced;
        }
        if state == State::Announced {
            let current = self.ledger().file(id)?;
            if let Ok(m) = std::fs::metadata(&current.work_path)
                && m.len() != current.bytes
            {
                log::error!(
                    product = rec.product.as_str(), file = rec.name.as_str();
                    "file {id} ({}) changed after its batch was uploaded: the {} bytes it had were delivered, the rest ({} bytes now) was not; the archived copy is the whole file: drop what was appended as a new export",
                    rec.name, current.bytes, m.len()
                );
            }
            self.archive(&current)?;
            failpoint::hit("after-archive");
            self.ledger().done(id)?;
            self.cleanup(rec);
        }
        let objects = a.objects.as_deref().unwrap_or_default();
        Ok(Delivered {
            product: rec.product.clone(),
            batch_id: a.announcement_id.clone(),
            rows: a.rows,
            objects: objects.len(),
            bytes: objects.iter().map(|o| o.bytes).sum(),
            message_id,
        })
    }

    /// Why the batch's announcement no longer matches the configuration (its producer, bucket
    /// or prefix were changed and reloaded since the conversion), if it does not.
    fn origin_changed(&self, rec: &FileRecord) -> Result<Option<String>, PipelineError> {
        let json = rec.announcement.clone().unwrap_or_default();
        let a = Announcement::from_json(json.as_bytes()).map_err(|e| PipelineError::Announce {
            id: rec.id,
            file: rec.name.clone(),
            source: Box::new(AnnounceError::Invalid(e)),
        })?;
        let location = lakemesh_shared::announcement::ProductLocation {
            bucket: self.cfg.bucket.clone(),
            prefix: self.cfg.prefix.trim_matches('/').to_owned(),
            product: a.product.clone(),
        }
        .uri();
        Ok(
            if a.producer_id != self.cfg.producer_id || a.location != location {
                Some(format!(
                    "the configuration changed since its conversion (producer {}, {} → producer {}, {location})",
                    a.producer_id, a.location, self.cfg.producer_id
                ))
            } else {
                None
            },
        )
    }

    /// Removes archive day folders older than `archive_retention_days`.
    pub fn prune_archive(&self) {
        let days = self.cfg.service.archive_retention_days;
        if days == 0 {
            return;
        }
        let now_days = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400);
        for (product, _) in self.layout.inboxes() {
            let root = self.layout.archive_root(product);
            let Ok(entries) = std::fs::read_dir(&root) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if is_expired_day(&name, now_days, days) {
                    match std::fs::remove_dir_all(e.path()) {
                        Ok(()) => log::info!(
                            "archive {}: removed (older than {days} days)",
                            e.path().display()
                        ),
                        Err(err) => {
                            log::warn!("archive {}: cannot remove: {err}", e.path().display())
                        }
                    }
                }
            }
        }
    }
}

/// Whether archive folder `name` is a day folder (`YYYY-MM-DD`, UTC) more than `retention_days`
/// before day `today` (days since 1970-01-01). Anything else is never removed.
pub fn is_expired_day(name: &str, today: u64, retention_days: u64) -> bool {
    let cutoff = today.saturating_sub(retention_days);
    let cutoff = crate::datefmt::format_date(i32::try_from(cutoff).unwrap_or(i32::MAX));
    let b = name.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    // Same shape, so comparing the text compares the dates.
    shape && name < cutoff.as_str()
}

/// Runs CPU or file work off the async workers; gives up waiting (leaving the thread to end on
/// its own, its result unused) when `cancel` fires.
async fn run_blocking<T: Send + 'static>(
    cancel: &CancellationToken,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PipelineError> {
    let handle = tokio::task::spawn_blocking(f);
    tokio::select! {
        r = handle => r.map_err(|e| PipelineError::Io {
            path: PathBuf::new(),
            what: "worker thread",
            source: io::Error::other(e.to_string()),
        }),
        () = cancel.cancelled() => Err(PipelineError::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_day_folders_past_retention_expire() {
        // 2026-12-04 is day 20791 since 1970-01-01.
        let today = 20_791;
        assert_eq!(crate::datefmt::format_date(today as i32), "2026-12-04");
        assert!(is_expired_day("2026-11-03", today, 30));
        assert!(!is_expired_day("2026-11-04", today, 30));
        assert!(!is_expired_day("2026-12-04", today, 30));
        assert!(!is_expired_day("notes", today, 30));
        assert!(!is_expired_day("2026-1x-01", today, 30));
        assert!(is_expired_day("2026-12-03", today, 0));
    }

    #[test]
    fn converter_refusals_go_to_failed_and_disk_trouble_is_retried() {
        let io = ConvertError::Io {
            path: PathBuf::from("/spool/1"),
            source: io::Error::other("disk full"),
        };
        assert!(!is_refusal(&io));
        let key = ConvertError::KeyMissing {
            product: "p".into(),
            column: "c".into(),
        };
        assert!(is_refusal(&key));
        assert!(
            PipelineError::Convert {
                file: "a.csv".into(),
                source: io
            }
            .is_transient()
        );
        assert!(!PipelineError::Key("k".into()).is_transient());
    }
}
