//! Announcement intake: long-poll the queue (batches of up to 10), work on at most
//! `max_in_flight` messages at once, keep each message invisible while its work runs
//! (visibility renewed every third of `visibility_timeout_secs`), delete it only after its
//! work succeeded. A rejected message (see `validate`) is an audit event: nothing changes in
//! Glue or Lake Formation, and the message is made visible again at once so that the queue's
//! redrive policy moves it to the dead-letter queue after `maxReceiveCount` receives; a
//! transient failure waits a capped, growing visibility timeout before the next try.
//!
//! Shutdown: when `shutdown` fires, no more messages are received; messages in flight get
//! `shutdown_grace_secs` to finish, then are released (visibility 0) for another daemon.
//! `run --once` drains the queue: it ends when a receive finds nothing and no work is left.
//!
//! Each finished message is recorded in the state store (`state`) when there is one, and the
//! one-line status systemd shows is updated. Under systemd the watchdog is pinged from this loop
//! itself (every wait in it is a `pinging` wait), so a loop that hangs stops the pings and
//! systemd restarts the service. The service is ready (`READY=1`) once the queue answered.
//!
//! The work of one message: validate, the database, the producer's location registration, the
//! crawler role's grants, the crawler (or the direct table), the coalesced crawl, and the
//! policy for that table. Every step is idempotent, so several daemons on one queue, and a
//! message delivered twice, end in the same state.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lakemesh_shared::announcement::Announcement;
use lakemesh_shared::aws::{AwsSettings, SdkConfig};
use lakemesh_shared::lifecycle;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::aws_error::AwsError;
use crate::backoff;
use crate::catalog::{Catalog, CatalogError};
use crate::config::{CatalogMode, Settings};
use crate::glue::{Glue, TableView};
use crate::govern::{GovernError, Governor};
use crate::lakeformation::LakeFormation;
use crate::policy::{Policy, TableRef};
use crate::s3::S3;
use crate::sqs::{Received, Sqs, redrive};
use crate::state::{self, StateStore};
use crate::validate::{self, Accepted, Envelope, Rejection, ValidateError};

/// Log target of audit events (rejected announcements).
pub const AUDIT_TARGET: &str = "lakemesh_syncd::audit";
/// Longest visibility timeout after a transient failure.
pub const MAX_RETRY_VISIBILITY: Duration = Duration::from_secs(900);

/// The AWS clients of the daemon.
#[derive(Debug, Clone)]
pub struct Clients {
    /// The announcements queue.
    pub sqs: Sqs,
    /// Claim-check manifests.
    pub s3: S3,
    /// The Data Catalog.
    pub glue: Glue,
    /// Lake Formation.
    pub lf: LakeFormation,
}

impl Clients {
    /// Clients for `sdk` (S3 path-style per `aws.force_path_style`).
    pub fn new(sdk: &SdkConfig, aws: &AwsSettings, queue_url: &str) -> Self {
        Self {
            sqs: Sqs::new(aws_sdk_sqs::Client::new(sdk), queue_url),
            s3: S3::new(lakemesh_shared::aws::s3_client(sdk, aws)),
            glue: Glue::new(aws_sdk_glue::Client::new(sdk)),
            lf: LakeFormation::new(aws_sdk_lakeformation::Client::new(sdk)),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Messages received (a redelivered message counts again).
    pub received: u64,
    /// Messages whose work succeeded and that were deleted.
    pub done: u64,
    /// Rejected messages (audit events).
    pub rejections: Vec<Rejection>,
    /// Messages whose work failed (left for a retry or the dead-letter queue).
    pub failed: u64,
    /// Messages released at shutdown.
    pub released: u64,
    /// Crawls started.
    pub crawls_started: u64,
}

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The queue cannot be read.
    #[error("receiving from {queue}: {source}")]
    Receive {
        /// Queue URL.
        queue: String,
        /// The SQS error.
        source: AwsError,
    },
}

/// A step of a message's work that failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Validate(ValidateError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Govern(#[from] GovernError),
    /// The announcement's columns contradict the table's: refused before anything is changed
    /// (a crawl of such files fails, and every later crawl of the product with it).
    #[error("{0}")]
    Incompatible(String),
}

impl StepError {
    /// The work stopped because the daemon is shutting down.
    fn is_shutdown(&self) -> bool {
        matches!(self, Self::Catalog(CatalogError::Shutdown))
    }

    fn is_transient(&self) -> bool {
        match self {
            Self::Validate(e) => e.is_transient(),
            Self::Catalog(e) => e.is_transient(),
            Self::Govern(e) => e.is_transient(),
            Self::Incompatible(_) => false,
        }
    }
}

enum Outcome {
    Done(String),
    Rejected(Rejection),
    Failed(StepError),
}

/// What a message names, for the state store: from the validated announcement when there is
/// one, else read from the body as far as it goes.
#[derive(Debug, Default)]
struct Subject {
    producer: Option<String>,
    product: Option<String>,
    batch: Option<String>,
}

impl Subject {
    fn of_body(m: &Received) -> Self {
        let v: Option<serde_json::Value> = serde_json::from_str(&m.body).ok();
        let field = |k: &str| {
            v.as_ref()
                .and_then(|v| v.get(k))
                .and_then(serde_json::Value::as_str)
                .map(|s| s.chars().take(128).collect::<String>())
        };
        Self {
            producer: field("producer_id").or_else(|| m.producer_id.clone()),
            product: field("product"),
            batch: field("announcement_id"),
        }
    }

    fn of(a: &Accepted) -> Self {
        Self {
            producer: Some(a.producer.id.clone()),
            product: Some(a.announcement.product.clone()),
            batch: Some(a.announcement.announcement_id.clone()),
        }
    }
}

/// Why a policy reload was refused (the running policy stays in force).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not parse or validate.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// The managed tables could not be read to lint it against them.
    #[error("cannot lint the policy against the managed tables: {0}")]
    Tables(#[from] GovernError),
}

/// Awaits `fut`, pinging the systemd watchdog at each tick of `ticks` meanwhile (no ticks: just
/// awaits).
async fn pinging<F: std::future::Future>(
    ticks: &mut Option<tokio::time::Interval>,
    fut: F,
) -> F::Output {
    let Some(t) = ticks else {
        return fut.await;
    };
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = t.tick() => lifecycle::watchdog_ping(),
        }
    }
}

/// The daemon: intake and the work of each message.
pub struct Daemon {
    settings: Arc<Settings>,
    clients: Clients,
    catalog: Arc<Catalog>,
    governor: Arc<Governor>,
    /// Cancelled after the shutdown grace period: in-flight work stops and is released.
    work: CancellationToken,
    report: Mutex<Report>,
    state: Option<Arc<StateStore>>,
}

impl Daemon {
    /// A daemon with its clients, recording what it handles in `state` when given.
    pub fn new(
        settings: Arc<Settings>,
        policy: Arc<Policy>,
        clients: Clients,
        state: Option<Arc<StateStore>>,
    ) -> Arc<Self> {
        let work = CancellationToken::new();
        let catalog = Catalog::new(clients.glue.clone(), Arc::clone(&settings), work.clone());
        let governor = Governor::new(
            clients.lf.clone(),
            clients.glue.clone(),
            Arc::clone(&settings),
            policy,
        );
        Arc::new(Self {
            settings,
            clients,
            catalog,
            governor,
            work,
            report: Mutex::new(Report::default()),
            state,
        })
    }

    /// Reads the policy file again, validates it, lints it against the managed tables and puts
    /// it in force; on any error the running policy stays. Recorded in the state store.
    pub async fn reload_policy(&self) -> Result<Arc<Policy>, ReloadError> {
        let path = &self.settings.policy_file;
        let loaded = Policy::load(path);
        // The hash of what was read, even when it does not parse (the file changed either way).
        let sha = match &loaded {
            Ok(p) => p.source_sha256.clone(),
            Err(_) => std::fs::read(path)
                .map(|b| state::policy_sha256(&b))
                .unwrap_or_default(),
        };
        let result = async {
            let policy = Arc::new(loaded?);
            policy
                .check_registry(&self.settings)
                .map_err(ReloadError::Policy)?;
            let tables = self.governor.managed_tables(None).await?;
            policy.lint_tables(&tables).map_err(ReloadError::Policy)?;
            Ok::<_, ReloadError>(policy)
        }
        .await;
        if let Some(store) = &self.state {
            let error = result.as_ref().err().map(ToString::to_string);
            if let Err(e) =
                store.record_policy_run(state::RunKind::Reload, &sha, None, error.as_deref())
            {
                log::warn!("{e}");
            }
        }
        let policy = result?;
        self.governor.replace_policy(Arc::clone(&policy));
        Ok(policy)
    }

    /// Before governing a table: the policy in force must be the policy file as it is now
    /// (edited and applied with `lakemesh-syncd apply` while the service ran, without a
    /// SIGHUP, it is reloaded first), so that the service never puts back what `apply` just
    /// revoked. When the file cannot be read or used (missing, half renamed, invalid), nothing
    /// is governed (`false`): an older policy than the file's is never applied.
    async fn follow_policy_file(&self) -> bool {
        let running = self.governor.policy();
        if running.source_sha256.is_empty() {
            return true; // a policy not read from a file (tests)
        }
        let path = &self.settings.policy_file;
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                log::error!(
                    "policy file {}: {e}; governance skipped until it is back (the running policy is not applied: it may be older than the last apply)",
                    path.display()
                );
                return false;
            }
        };
        if state::policy_sha256(&bytes) == running.source_sha256 {
            return true;
        }
        match self.reload_policy().await {
            Ok(p) => {
                log::info!(
                    "policy file {} changed: reloaded before governing ({} grants, sha256 {})",
                    path.display(),
                    p.grants.len(),
                    &p.source_sha256[..12.min(p.source_sha256.len())]
                );
                true
            }
            Err(e) => {
                log::error!(
                    "policy file {} changed but cannot be used: {e}; governance skipped until it is fixed (the running policy is not applied: it may be older than the last apply)",
                    path.display()
                );
                false
            }
        }
    }

    /// The one-line status for `systemctl status`.
    pub fn status_line(&self) -> String {
        let r = self
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        format!(
            "consuming {}: {} accepted, {} rejected, {} failed",
            self.clients.sqs.url(),
            r.done,
            r.rejections.len(),
            r.failed
        )
    }

    fn record(
        &self,
        m: &Received,
        subject: &Subject,
        outcome: state::Outcome,
        error: Option<&str>,
    ) {
        if let Some(store) = &self.state
            && let Err(e) = store.record_announcement(
                &m.message_id,
                subject.producer.as_deref(),
                subject.product.as_deref(),
                subject.batch.as_deref(),
                outcome,
                error,
            )
        {
            log::warn!("message={}: not recorded: {e}", m.message_id);
        }
    }

    /// The governor (for `plan`/`apply`).
    pub fn governor(&self) -> &Arc<Governor> {
        &self.governor
    }

    fn note(&self, f: impl FnOnce(&mut Report)) {
        f(&mut self
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Consumes the queue until `shutdown` (or, with `once`, until it is drained).
    pub async fn run(
        self: &Arc<Self>,
        once: bool,
        shutdown: CancellationToken,
    ) -> Result<Report, ConsumeError> {
        let sqs = &self.clients.sqs;
        let mut ticks = lifecycle::watchdog_interval().map(|every| {
            let mut t = tokio::time::interval(every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut attempts = 0u32;
        let attributes = loop {
            match sqs.attributes(sqs.url()).await {
                // The service waits for the queue before it is ready; `--once` goes on.
                Err(e) if !once && e.is_transient() => {
                    let wait = crate::backoff::delay(attempts.min(6) + 2);
                    attempts += 1;
                    log::warn!(
                        "queue={}: not reachable ({e}); trying again in {wait:?}",
                        sqs.url()
                    );
                    // systemctl shows one line: the start of the error is enough there
                    let why: String = e.to_string().chars().take(160).collect();
                    lifecycle::status(&format!("waiting for the queue {}: {why}", sqs.url()));
                    let stopped = pinging(&mut ticks, async {
                        tokio::select! {
                            () = tokio::time::sleep(wait) => false,
                            () = shutdown.cancelled() => true,
                        }
                    })
                    .await;
                    if stopped {
                        return Ok(Report::default());
                    }
                }
                other => break other,
            }
        };
        let max_receive = match attributes {
            Ok(a) => match a.get("RedrivePolicy").and_then(|p| redrive(p)) {
                Some((n, dlq)) => Some((n, dlq)),
                None => {
                    log::warn!(
                        "queue={}: no redrive policy; poison messages will be received again and again \
                         (give the queue a dead-letter queue)",
                        sqs.url()
                    );
                    None
                }
            },
            Err(e) => {
                log::warn!("queue={}: cannot read its attributes: {e}", sqs.url());
                None
            }
        };
        let max_receive = Arc::new(max_receive);
        log::info!(
            "intake: queue={} max_in_flight={} mode={}",
            sqs.url(),
            self.settings.max_in_flight,
            if once { "once" } else { "service" }
        );
        lifecycle::ready(&self.status_line());
        let permits = Arc::new(Semaphore::new(self.settings.max_in_flight));
        let tracker = TaskTracker::new();
        let mut failures = 0u32;
        loop {
            let first = pinging(&mut ticks, async {
                tokio::select! {
                    p = Arc::clone(&permits).acquire_owned() => p.ok(),
                    () = shutdown.cancelled() => None,
                }
            })
            .await;
            let Some(first) = first else { break };
            let n = (1 + permits.available_permits()).min(10);
            // An empty answer ends a drain only if no work was running when the receive
            // started: running work may still release its message back to the queue.
            let idle = tracker.is_empty();
            let received = pinging(&mut ticks, async {
                tokio::select! {
                    r = sqs.receive(n as i32, self.settings.wait_time, self.settings.visibility_timeout) => Some(r),
                    () = shutdown.cancelled() => None,
                }
            })
            .await;
            let Some(received) = received else { break };
            let messages = match received {
                Ok(m) => {
                    failures = 0;
                    m
                }
                // The service outlives an SQS outage (it keeps retrying, the wait capped at
                // 20 s; ERROR once it has lasted ten attempts); `--once` gives up after ten.
                Err(e) if e.is_transient() && (!once || failures < 10) => {
                    let wait = crate::backoff::delay(failures.min(16) + 2);
                    if failures >= 10 {
                        log::error!(
                            "queue={}: {e}; still unreachable after {} attempts, receiving again in {wait:?}",
                            sqs.url(),
                            failures + 1
                        );
                    } else {
                        log::warn!("queue={}: {e}; receiving again in {wait:?}", sqs.url());
                    }
                    failures = failures.saturating_add(1);
                    drop(first);
                    let stopped = pinging(&mut ticks, async {
                        tokio::select! {
                            () = tokio::time::sleep(wait) => false,
                            () = shutdown.cancelled() => true,
                        }
                    })
                    .await;
                    if stopped {
                        break;
                    }
                    continue;
                }
                Err(source) => {
                    drop(first);
                    tracker.close();
                    tracker.wait().await;
                    return Err(ConsumeError::Receive {
                        queue: sqs.url().to_owned(),
                        source,
                    });
                }
            };
            if messages.is_empty() {
                drop(first);
                if once && idle {
                    break;
                }
                if once {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
            let mut first = Some(first);
            for m in messages {
                let permit = match first.take() {
                    Some(p) => p,
                    None => match pinging(&mut ticks, Arc::clone(&permits).acquire_owned()).await {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                self.note(|r| r.received += 1);
                let me = Arc::clone(self);
                let max_receive = Arc::clone(&max_receive);
                tracker.spawn(async move {
                    me.handle(m, max_receive.as_ref().as_ref().map(|(n, _)| *n))
                        .await;
                    drop(permit);
                });
            }
        }
        tracker.close();
        if shutdown.is_cancelled() && !tracker.is_empty() {
            log::info!(
                "shutdown: no more messages received; {} in flight get {} s to finish",
                tracker.len(),
                self.settings.shutdown_grace.as_secs()
            );
        }
        let drained = pinging(&mut ticks, async {
            tokio::select! {
                () = tracker.wait() => true,
                () = async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(self.settings.shutdown_grace).await;
                } => false,
            }
        })
        .await;
        if !drained {
            log::warn!("shutdown: grace period over; releasing the messages still in flight");
            self.work.cancel();
            pinging(&mut ticks, tracker.wait()).await;
        }
        let mut report = self
            .report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        report.crawls_started = self.catalog.crawls_started();
        Ok(report)
    }

    async fn handle(&self, m: Received, max_receive: Option<u32>) {
        let sqs = &self.clients.sqs;
        let visibility = self.settings.visibility_timeout;
        let started = Instant::now();
        let heartbeat = async {
            loop {
                tokio::time::sleep(visibility / 3).await;
                match sqs.set_visibility(&m.receipt_handle, visibility).await {
                    Ok(()) => log::debug!(
                        "message={}: visibility extended by {} s",
                        m.message_id,
                        visibility.as_secs()
                    ),
                    Err(e) => log::warn!(
                        "message={}: cannot extend its visibility: {e}",
                        m.message_id
                    ),
                }
            }
        };
        let outcome = tokio::select! {
            biased;
            () = self.work.cancelled() => None,
            o = self.process(&m) => match o {
                (Outcome::Failed(e), _) if e.is_shutdown() => None,
                o => Some(o),
            },
            () = heartbeat => None,
        };
        let secs = started.elapsed().as_secs_f64();
        match outcome {
            None => {
                if let Err(e) = sqs.set_visibility(&m.receipt_handle, Duration::ZERO).await {
                    log::warn!(
                        "message={}: not released ({e}); it reappears after its visibility timeout",
                        m.message_id
                    );
                }
                log::info!(
                    "message={}: released to the queue at shutdown",
                    m.message_id
                );
                self.note(|r| r.released += 1);
            }
            Some((Outcome::Done(summary), subject)) => {
                let delete = || sqs.delete(&m.receipt_handle);
                let what = format!("delete message {}", m.message_id);
                if let Err(e) = crate::backoff::retry(&what, Duration::from_secs(30), delete).await
                {
                    log::warn!(
                        "message={}: work done but not deleted ({e}); it will be done again, harmlessly",
                        m.message_id
                    );
                }
                log::info!("message={}: {summary} in {secs:.1} s", m.message_id);
                self.record(&m, &subject, state::Outcome::Accepted, None);
                self.note(|r| r.done += 1);
            }
            Some((Outcome::Rejected(r), subject)) => {
                log::warn!(
                    target: AUDIT_TARGET,
                    "audit: rejected announcement message={} claimed_producer={} sender={} announcement={} receive={} reason={:?}",
                    m.message_id, r.producer, r.sender, r.announcement, m.receive_count, r.reason
                );
                self.poison(&m, max_receive).await;
                let subject = Subject {
                    producer: subject
                        .producer
                        .or_else(|| (r.producer != "?").then(|| r.producer.clone())),
                    batch: subject
                        .batch
                        .or_else(|| (r.announcement != "?").then(|| r.announcement.clone())),
                    ..subject
                };
                self.record(&m, &subject, state::Outcome::Rejected, Some(&r.reason));
                self.note(|rep| rep.rejections.push(r));
            }
            Some((Outcome::Failed(e), subject)) => {
                let transient = e.is_transient();
                if transient {
                    let wait =
                        Duration::from_secs(30u64 << m.receive_count.saturating_sub(1).min(5))
                            .min(MAX_RETRY_VISIBILITY);
                    log::error!(
                        "message={}: failed (receive {}): {e}; retrying in {} s",
                        m.message_id,
                        m.receive_count,
                        wait.as_secs()
                    );
                    if let Err(err) = sqs.set_visibility(&m.receipt_handle, wait).await {
                        log::warn!("message={}: {err}", m.message_id);
                    }
                } else {
                    log::error!(
                        "message={}: failed permanently (receive {}): {e}",
                        m.message_id,
                        m.receive_count
                    );
                    self.poison(&m, max_receive).await;
                }
                self.record(&m, &subject, state::Outcome::Failed, Some(&e.to_string()));
                self.note(|r| r.failed += 1);
            }
        }
        lifecycle::status(&self.status_line());
    }

    /// A message that can never succeed: visible again now, so that the redrive policy moves
    /// it to the dead-letter queue after `maxReceiveCount` receives. Without a redrive policy
    /// nothing would ever take it away: it comes back after a wait that grows with its
    /// receives (30 s, 60 s, … up to 15 min) rather than at once, so that it neither spins
    /// the daemon nor hides the rest of the queue.
    async fn poison(&self, m: &Received, max_receive: Option<u32>) {
        let wait = match max_receive {
            Some(max) => {
                log::warn!(
                    "message={}: poison (receive {} of {max}); the queue's redrive policy moves it to the dead-letter queue after {max} receives",
                    m.message_id,
                    m.receive_count
                );
                Duration::ZERO
            }
            None => {
                let wait = poison_wait(m.receive_count);
                log::error!(
                    "message={}: poison (receive {}), and the queue has no redrive policy: it comes back in {} s, until it expires (give the queue a dead-letter queue)",
                    m.message_id,
                    m.receive_count,
                    wait.as_secs()
                );
                wait
            }
        };
        if let Err(e) = self
            .clients
            .sqs
            .set_visibility(&m.receipt_handle, wait)
            .await
        {
            log::warn!("message={}: {e}", m.message_id);
        }
    }

    async fn process(&self, m: &Received) -> (Outcome, Subject) {
        let env = Envelope {
            body: &m.body,
            sender_id: m.sender_id.as_deref(),
            producer_id: m.producer_id.as_deref(),
            announcement_version: m.announcement_version.as_deref(),
        };
        let accepted = match validate::validate(&self.settings, &self.clients.s3, env).await {
            Ok(a) => a,
            Err(ValidateError::Rejected(r)) => return (Outcome::Rejected(r), Subject::of_body(m)),
            Err(e) => {
                return (Outcome::Failed(StepError::Validate(e)), Subject::of_body(m));
            }
        };
        let subject = Subject::of(&accepted);
        match self.work_on(&accepted).await {
            Ok(summary) => (Outcome::Done(summary), subject),
            Err(StepError::Incompatible(reason)) => (
                Outcome::Rejected(Rejection {
                    producer: accepted.producer.id.clone(),
                    sender: m.sender_id.clone().unwrap_or_else(|| "?".into()),
                    announcement: accepted.announcement.announcement_id.clone(),
                    reason,
                }),
                subject,
            ),
            Err(e) => (Outcome::Failed(e), subject),
        }
    }

    async fn work_on(&self, acc: &Accepted) -> Result<String, StepError> {
        let a = &acc.announcement;
        let db = &acc.database;
        self.catalog
            .ensure_database(db, &acc.producer, &a.domain)
            .await?;
        let existing = self
            .catalog
            .glue()
            .get_table(db, &a.product)
            .await
            .map_err(CatalogError::Glue)?;
        if let Some(t) = &existing
            && let Err(e) = check_columns(db, t, a)
        {
            // The refused batch's objects stay in the product folder: the crawler must never
            // read them, or every later crawl of the product fails on them.
            if self.settings.catalog_mode == CatalogMode::Crawler
                && let Some(mut spec) = self.catalog.crawler_spec(db, &acc.location, &acc.producer)
            {
                spec.exclusions
                    .push(format!("**/part-{}-*.parquet", a.announcement_id));
                let name = self.catalog.ensure_crawler(&spec).await?;
                log::warn!(
                    "crawler={name}: the objects of refused batch {batch} are excluded from its crawls; the producer may delete them ({}**/part-{batch}-*.parquet)",
                    acc.location.uri(),
                    batch = a.announcement_id,
                );
            }
            return Err(e);
        }
        self.governor.register_location(&acc.producer).await?;
        self.governor.prepare_database(db, &acc.producer).await?;
        let cataloged = match self.settings.catalog_mode {
            CatalogMode::Crawler => {
                let Some(spec) = self.catalog.crawler_spec(db, &acc.location, &acc.producer) else {
                    return Err(CatalogError::Glue(AwsError::invalid_answer(
                        "Glue",
                        "CreateCrawler",
                        db.as_str(),
                        "crawler mode without crawler_role_arn",
                    ))
                    .into());
                };
                let name = self.catalog.ensure_crawler(&spec).await?;
                self.catalog.crawl(&name).await?;
                let added = self.add_new_columns(db, a).await?;
                if added.is_empty() {
                    format!("crawled by {name}")
                } else {
                    format!("crawled by {name}, columns {} added", added.join(", "))
                }
            }
            CatalogMode::Direct => {
                let added = self.catalog.write_direct(db, a).await?;
                format!("written directly, {added} new partitions")
            }
        };
        let table = TableRef {
            database: db.clone(),
            table: a.product.clone(),
        };
        if !self.follow_policy_file().await {
            return Ok(format!(
                "announcement {} of producer {}: table {table} cataloged; governance skipped: the policy file cannot be used (see the ERROR above; run `lakemesh-syncd apply` once it is fixed)",
                a.announcement_id, acc.producer.id
            ));
        }
        let changes = self.governor.apply_table(&table).await?;
        self.governor.tag_pii_columns(&table, &a.columns).await?;
        Ok(format!(
            "announcement {} of producer {}: table {table} {cataloged}, {} objects, {changes} policy changes",
            a.announcement_id,
            acc.producer.id,
            a.objects.as_ref().map_or(0, Vec::len)
        ))
    }
}

impl Daemon {
    /// Crawler mode: columns the announcement has and the crawled table lacks are added (a
    /// crawler that crawls new folders only logs schema changes and applies none).
    async fn add_new_columns(&self, db: &str, a: &Announcement) -> Result<Vec<String>, StepError> {
        let glue = self.catalog.glue();
        let Some(t) = glue
            .get_table(db, &a.product)
            .await
            .map_err(CatalogError::Glue)?
        else {
            return Ok(Vec::new());
        };
        let have: std::collections::BTreeSet<String> = t
            .columns
            .iter()
            .chain(&t.partition_keys)
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect();
        let new: Vec<(String, String)> = a
            .columns
            .iter()
            .filter(|c| !have.contains(&c.name.to_ascii_lowercase()))
            .map(|c| (c.name.clone(), c.ty.clone()))
            .collect();
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let what = format!("add columns to {db}.{}", a.product);
        backoff::retry(&what, self.settings.retry_limit, || {
            glue.add_columns(db, &a.product, &new)
        })
        .await
        .map_err(CatalogError::Glue)?;
        let names: Vec<String> = new.iter().map(|(n, t)| format!("{n} {t}")).collect();
        log::warn!(
            "table={db}.{}: new columns {} from announcement {}: every grant with a column exclusion list now sees them (grants with include lists do not)",
            a.product,
            names.join(", "),
            a.announcement_id
        );
        Ok(names)
    }
}

/// The announcement against the table as cataloged: a column of another type is refused
/// (Athena would fail on the files of one type or the other).
fn check_columns(db: &str, t: &TableView, a: &Announcement) -> Result<(), StepError> {
    let norm = |ty: &str| ty.to_ascii_lowercase().replace(' ', "");
    for c in &a.columns {
        if let Some((_, was)) = t
            .columns
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&c.name))
            && norm(was) != norm(&c.ty)
        {
            return Err(StepError::Incompatible(format!(
                "column {} is {} in this batch but {was} in table {db}.{}: a type change needs a new product (or the table rebuilt), Athena cannot read both",
                c.name, c.ty, a.product
            )));
        }
    }
    for k in &a.partition_keys {
        if t.columns.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)) {
            return Err(StepError::Incompatible(format!(
                "partition key {k} is a body column of table {db}.{}",
                a.product
            )));
        }
    }
    Ok(())
}

/// How long a poison message stays hidden when the queue has no redrive policy.
fn poison_wait(receive_count: u32) -> Duration {
    Duration::from_secs((30 * u64::from(receive_count.max(1))).min(900))
}
