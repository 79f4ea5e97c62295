//! The service (`lakemesh-agent run`) and the one-shot `ingest`.
//!
//! `run` holds `{state_dir}/agent.lock`, resumes whatever the ledger shows unfinished, and runs
//! three tasks that talk through the ledger and wake-ups:
//! - intake: watches every inbox (events plus a rescan every `rescan_secs`; every second or so
//!   while a file settles) and claims ready files;
//! - convert: hashes and converts claimed files, oldest first, into the spool (off the async
//!   workers), and keeps doing so while S3 or SQS is unreachable;
//! - deliver: uploads, announces and archives converted files strictly in claim order; a
//!   failed step is retried after a capped exponential backoff (`retry_initial_secs` doubling up
//!   to `retry_max_secs`), recorded in the ledger for `status`, and never skipped.
//!
//! SIGTERM or SIGINT cancel one `CancellationToken`: intake stops, a conversion in progress is
//! abandoned (it runs again on the next start), an upload finishes its current request, and the
//! `TaskTracker` is drained within `shutdown_grace_secs`. SIGHUP reloads the configuration: a
//! valid new one replaces the running one between steps (a child token per configuration; the
//! current conversion and uploads finish first); an invalid one is logged and ignored.
//!
//! Owns scheduling, signals and retry timing; the steps themselves are [`crate::pipeline`]'s.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lakemesh_shared::lifecycle;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backoff::{Backoff, clock_jitter};
use crate::config::{AgentConfig, ConfigError};
use crate::ledger::FileRecord;
use crate::pipeline::{Agent, Delivered, PipelineError, Prepared};
use crate::watch::{EventWatcher, Inbox};

/// Why the service or `ingest` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The `[aws]` settings are unusable.
    #[error("config: {0}")]
    Aws(#[from] lakemesh_shared::aws::AwsSettingsError),
    /// Another process holds the state folder.
    #[error(
        "{}: another lakemesh-agent (run or ingest) is using this state folder; stop it, or drop the file into the product's inbox",
        .0.display()
    )]
    Locked(PathBuf),
    /// A file operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A step failed.
    #[error(transparent)]
    Pipeline(Box<PipelineError>),
    /// `ingest`: the product is not in the configuration.
    #[error("{0}")]
    Usage(String),
}

impl From<PipelineError> for ServiceError {
    fn from(e: PipelineError) -> Self {
        Self::Pipeline(Box::new(e))
    }
}

/// Takes `{state_dir}/agent.lock` (released when the returned file is dropped or the process
/// ends, also by kill -9).
pub fn lock_state(cfg: &AgentConfig) -> Result<File, ServiceError> {
    let layout = crate::layout::Layout::new(cfg);
    std::fs::create_dir_all(&layout.state_dir).map_err(|source| ServiceError::Io {
        path: layout.state_dir.clone(),
        source,
    })?;
    let path = layout.lock_file();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ServiceError::Io {
            path: path.clone(),
            source,
        })?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServiceError::Locked(path)),
        Err(std::fs::TryLockError::Error(source)) => Err(ServiceError::Io { path, source }),
    }
}

/// The SDK configuration for `cfg` (standard credential chain).
pub async fn sdk_config(
    cfg: &AgentConfig,
) -> Result<lakemesh_shared::aws::SdkConfig, ServiceError> {
    Ok(lakemesh_shared::aws::sdk_config(&cfg.aws).await?)
}

fn log_delivered(rec: &FileRecord, d: &Delivered) {
    log::info!(
        product = d.product.as_str(), batch = d.batch_id.as_str(), rows = d.rows,
        objects = d.objects, bytes = d.bytes, file = rec.name.as_str(), message_id = d.message_id.as_str();
        "delivered {} batch {}: {} rows, {} objects, {} bytes (file {}, message {})",
        d.product, d.batch_id, d.rows, d.objects, d.bytes, rec.name, d.message_id
    );
}

/// Waits `d`, or less if `cancel` fires; false when cancelled.
async fn pause(d: Duration, cancel: &CancellationToken, wake: Option<&Notify>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = cancel.cancelled() => false,
        () = async { match wake { Some(w) => w.notified().await, None => std::future::pending().await } } => true,
    }
}

/// `lakemesh-agent run`: the service, until SIGTERM/SIGINT.
pub async fn run(config_path: &Path) -> Result<(), ServiceError> {
    let mut cfg = AgentConfig::load(config_path)?;
    cfg.check_key()?;
    let _lock = lock_state(&cfg)?;
    let shutdown = CancellationToken::new();
    let (reload_tx, mut reload_rx) = mpsc::channel::<()>(1);
    let signals = |kind| {
        signal(kind).map_err(|source| ServiceError::Io {
            path: PathBuf::from("signal handler"),
            source,
        })
    };
    let (mut term, mut int, mut hup) = (
        signals(SignalKind::terminate())?,
        signals(SignalKind::interrupt())?,
        signals(SignalKind::hangup())?,
    );
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => { log::info!("SIGTERM: finishing the current step"); shutdown.cancel(); break; }
                    _ = int.recv() => { log::info!("SIGINT: finishing the current step"); shutdown.cancel(); break; }
                    _ = hup.recv() => { let _ = reload_tx.try_send(()); }
                }
            }
        });
    }
    log::info!(
        "lakemesh-agent {} running: producer {}, bucket s3://{}/{}, {} products, state {}",
        env!("CARGO_PKG_VERSION"),
        cfg.producer_id,
        cfg.bucket,
        cfg.prefix,
        cfg.products.len(),
        cfg.state_dir.display()
    );
    if let Some(every) = lifecycle::watchdog_interval() {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = tick.tick() => lifecycle::watchdog_ping(),
                }
            }
        });
    }
    loop {
        let sdk = sdk_config(&cfg).await?;
        let agent = Agent::new(cfg.clone(), &sdk)?;
        agent.recover_claims()?;
        let generation = shutdown.child_token();
        let tracker = TaskTracker::new();
        let to_convert = Arc::new(Notify::new());
        let to_deliver = Arc::new(Notify::new());
        tracker.spawn(intake(
            agent.clone(),
            generation.clone(),
            Arc::clone(&to_convert),
        ));
        tracker.spawn(converter(
            agent.clone(),
            generation.clone(),
            shutdown.clone(),
            Arc::clone(&to_convert),
            Arc::clone(&to_deliver),
        ));
        tracker.spawn(deliverer(
            agent.clone(),
            generation.clone(),
            Arc::clone(&to_deliver),
        ));
        tracker.close();
        let products: Vec<&str> = cfg.products.iter().map(|p| p.name.as_str()).collect();
        let line = format!(
            "delivering {} to s3://{}/{}",
            products.join(", "),
            cfg.bucket,
            cfg.prefix
        );
        // READY=1 at start and again after each reload (systemd waits for it then)
        lifecycle::ready(&line);
        let grace = cfg.service.shutdown_grace;
        let reloaded = loop {
            tokio::select! {
                () = shutdown.cancelled() => break None,
                Some(()) = reload_rx.recv() => match AgentConfig::load(config_path)
                    .and_then(|new| new.check_key().map(|()| new))
                {
                    Ok(new) if new.state_dir != cfg.state_dir || new.spool_dir != cfg.spool_dir => {
                        log::error!(
                            "SIGHUP: state_dir or spool_dir changed ({} → {}): the running agent holds the lock of its state folder, so moving to another one needs a restart; keeping the running configuration",
                            cfg.state_dir.display(),
                            new.state_dir.display()
                        );
                    }
                    Ok(new) => break Some(new),
                    Err(e) => log::error!("SIGHUP: {e}; keeping the running configuration"),
                },
            }
        };
        generation.cancel();
        if reloaded.is_some() {
            lifecycle::reloading();
        } else {
            lifecycle::stopping();
        }
        if reloaded.is_some() {
            // A reload waits for the current steps (a conversion runs to its end), so the old
            // and the new configuration never work on one file at the same time.
            tracker.wait().await;
        } else if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            log::warn!(
                "the current step did not finish within {} s; the next start resumes it",
                grace.as_secs()
            );
        }
        match reloaded {
            None => {
                log::info!("stopped");
                return Ok(());
            }
            Some(new) => {
                log::info!("SIGHUP: configuration {} reloaded", config_path.display());
                cfg = new;
            }
        }
    }
}

/// Intake: scan every inbox on events and periodically, claim ready files.
async fn intake(agent: Agent, cancel: CancellationToken, to_convert: Arc<Notify>) {
    let s = agent.cfg.service.clone();
    let mut inboxes: Vec<Inbox> = agent
        .layout
        .inboxes()
        .iter()
        .map(|(p, d)| Inbox::new(p, d.clone(), s.require_marker, s.settle))
        .collect();
    let dirs: Vec<PathBuf> = inboxes.iter().map(|i| i.dir.clone()).collect();
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let _watcher = EventWatcher::start(&dirs, tx);
    let settle_poll = (s.settle / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
    let mut last_prune = Instant::now();
    agent.prune_archive();
    loop {
        let now = Instant::now();
        let mut waiting = false;
        for inbox in &mut inboxes {
            let scan = match tokio::task::block_in_place(|| inbox.scan(now)) {
                Ok(scan) => scan,
                Err(e) => {
                    log::warn!("inbox {}: {e}", inbox.dir.display());
                    continue;
                }
            };
            waiting |= scan.waiting > 0;
            for path in scan.ready {
                if cancel.is_cancelled() {
                    return;
                }
                let claimed = tokio::task::block_in_place(|| {
                    agent.claim(&inbox.product, &path, false, false)
                });
                if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    inbox.forget(name);
                }
                match claimed {
                    Ok(Some(_)) => to_convert.notify_one(),
                    Ok(None) => {}
                    Err(e) => {
                        log::error!("{e}");
                        let _ = agent.ledger().record_error(None, &e.to_string());
                    }
                }
            }
        }
        if last_prune.elapsed() > Duration::from_secs(3600) {
            agent.prune_archive();
            last_prune = Instant::now();
        }
        let wait = if waiting {
            settle_poll.min(s.rescan)
        } else {
            s.rescan
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            Some(_) = rx.recv() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Convert: hash and convert claimed files, oldest first. `cancel` (this configuration's
/// generation) stops it between files; only `shutdown` abandons a conversion in progress.
async fn converter(
    agent: Agent,
    cancel: CancellationToken,
    shutdown: CancellationToken,
    to_convert: Arc<Notify>,
    to_deliver: Arc<Notify>,
) {
    let s = agent.cfg.service.clone();
    let mut backoff = Backoff::new(s.retry_initial, s.retry_max);
    while !cancel.is_cancelled() {
        let next = agent.ledger().next_to_convert();
        let rec = match next {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                if !pause(s.rescan, &cancel, Some(&to_convert)).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                log::error!("{e}");
                if !pause(backoff.fail(clock_jitter()), &cancel, None).await {
                    return;
                }
                continue;
            }
        };
        match agent.prepare(&rec, &shutdown).await {
            Ok(Prepared::Converted | Prepared::Duplicate { .. } | Prepared::Failed { .. }) => {
                backoff.succeed();
                to_deliver.notify_one();
            }
            Err(PipelineError::Cancelled) => return,
            Err(e) => {
                let wait = backoff.fail(clock_jitter());
                if e.is_transient() {
                    log::warn!(
                        product = rec.product.as_str(), file = rec.name.as_str();
                        "{e}; trying again in {:.0} s", wait.as_secs_f64()
                    );
                } else {
                    log::error!(
                        product = rec.product.as_str(), file = rec.name.as_str();
                        "{e}; trying again in {:.0} s (an operator must act)", wait.as_secs_f64()
                    );
                }
                let _ = agent.ledger().record_error(Some(rec.id), &e.to_string());
                if !pause(wait, &cancel, None).await {
                    return;
                }
            }
        }
    }
}

/// Deliver: upload, announce and archive converted files in claim order.
async fn deliverer(agent: Agent, cancel: CancellationToken, to_deliver: Arc<Notify>) {
    let s = agent.cfg.service.clone();
    let mut backoff = Backoff::new(s.retry_initial, s.retry_max);
    while !cancel.is_cancelled() {
        let next = agent.ledger().next_to_deliver();
        let rec = match next {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                if !pause(s.rescan, &cancel, Some(&to_deliver)).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                log::error!("{e}");
                if !pause(backoff.fail(clock_jitter()), &cancel, None).await {
                    return;
                }
                continue;
            }
        };
        // Claim order: an older file still converting goes first.
        let older = agent.ledger().older_unconverted(rec.id);
        match older {
            Ok(false) => {}
            Ok(true) => {
                if !pause(Duration::from_secs(1), &cancel, Some(&to_deliver)).await {
                    return;
                }
                continue;
            }
            Err(e) => log::error!("{e}"),
        }
        match agent.deliver(&rec, &cancel).await {
            Ok(d) => {
                backoff.succeed();
                log_delivered(&rec, &d);
            }
            Err(PipelineError::Cancelled) => return,
            Err(e) => {
                let wait = backoff.fail(clock_jitter());
                let backlog = agent.ledger().status().map_or(0, |st| st.backlog.len());
                let text = format!(
                    "{e}; {backlog} files waiting in the spool; trying again in {:.0} s",
                    wait.as_secs_f64()
                );
                if e.is_transient() {
                    log::warn!(product = rec.product.as_str(), file = rec.name.as_str(); "{text}");
                } else {
                    log::error!(product = rec.product.as_str(), file = rec.name.as_str(); "{text} (an operator must act)");
                }
                let _ = agent.ledger().record_error(Some(rec.id), &e.to_string());
                if !pause(wait, &cancel, None).await {
                    return;
                }
            }
        }
    }
}

/// What `ingest` came to.
#[derive(Debug)]
pub enum Ingested {
    /// Delivered.
    Delivered(Delivered),
    /// The same content was delivered before; not announced again.
    Duplicate {
        /// The earlier file's id.
        of: i64,
    },
    /// The converter refused the file (in `failed/` with its report).
    Refused {
        /// Where it is.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Converted but not delivered after `attempts` tries; it waits in the spool for `run`.
    Spooled {
        /// The last error.
        error: String,
    },
}

/// `lakemesh-agent ingest FILE --product P`: one file, now, in the foreground. The file is
/// copied (the original stays where it is). Delivery is tried a few times with backoff; if it
/// still fails the batch waits in the spool and the next `run` delivers it.
pub async fn ingest(
    config_path: &Path,
    file: &Path,
    product: &str,
    force: bool,
) -> Result<Ingested, ServiceError> {
    let cfg = AgentConfig::load(config_path)?;
    cfg.product(product)?;
    let _lock = lock_state(&cfg)?;
    let sdk = sdk_config(&cfg).await?;
    let agent = Agent::new(cfg, &sdk)?;
    agent.recover_claims()?;
    let cancel = CancellationToken::new();
    let rec = agent
        .claim(product, file, force, true)?
        .ok_or_else(|| ServiceError::Io {
            path: file.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
    let s = agent.cfg.service.clone();
    let mut backoff = Backoff::new(s.retry_initial, s.retry_max);
    loop {
        let current = agent.ledger().file(rec.id).map_err(PipelineError::from)?;
        match agent.prepare(&current, &cancel).await {
            Ok(Prepared::Converted) => break,
            Ok(Prepared::Duplicate { of }) => return Ok(Ingested::Duplicate { of }),
            Ok(Prepared::Failed { path, reason }) => return Ok(Ingested::Refused { path, reason }),
            Err(e) if e.is_transient() && backoff.failures() < 2 => {
                let wait = backoff.fail(clock_jitter());
                log::warn!("{e}; trying again in {:.0} s", wait.as_secs_f64());
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    backoff.succeed();
    loop {
        let current = agent.ledger().file(rec.id).map_err(PipelineError::from)?;
        match agent.deliver(&current, &cancel).await {
            Ok(d) => {
                log_delivered(&current, &d);
                return Ok(Ingested::Delivered(d));
            }
            Err(e) if e.is_transient() && backoff.failures() < 2 => {
                let wait = backoff.fail(clock_jitter());
                log::warn!("{e}; trying again in {:.0} s", wait.as_secs_f64());
                let _ = agent.ledger().record_error(Some(rec.id), &e.to_string());
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                let _ = agent.ledger().record_error(Some(rec.id), &e.to_string());
                return Ok(Ingested::Spooled {
                    error: e.to_string(),
                });
            }
        }
    }
}
