//! `lakemesh-syncd status`: what the state store recorded (announcements accepted, rejected and
//! failed, the last success, the last error, the newest failures with their reasons), the
//! depths of the announcements queue and its dead-letter queue when SQS answers (and why not
//! when it does not), and whether the policy file on disk is the one last applied (SHA-256).
//!
//! Owns the report ([`Status`], whose JSON keys are stable: scripts and monitoring read them)
//! and its text form. Does not own the records (`state`) nor the queues (`sqs`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::Settings;
use crate::sqs::{Sqs, redrive};
use crate::state::{AnnouncementRecord, Outcome, StateError, StateStore};

/// Longest wait for one SQS answer: `status` must answer quickly when the network does not.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(20);

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The configuration file.
    pub config: PathBuf,
    /// The state database.
    pub state_file: PathBuf,
    /// Whether it exists (the service created it at its first run).
    pub state_present: bool,
    /// Why it exists but cannot be read (the rest of the report is still given).
    pub state_error: Option<String>,
    /// The announcements queue.
    pub queue: QueueStatus,
    /// Its dead-letter queue (`dead_letter_queue_url`, else the target of the queue's redrive
    /// policy).
    pub dead_letter_queue: QueueStatus,
    /// Announcements recorded, by outcome.
    pub announcements: Counts,
    /// The last accepted announcement.
    pub last_success: Option<AnnouncementRecord>,
    /// The newest error: a rejected or failed announcement, or a failed policy run.
    pub last_error: Option<LastError>,
    /// The newest rejected or failed announcements, newest first.
    pub recent_failures: Vec<AnnouncementRecord>,
    /// The policy file against the last applied one.
    pub policy: PolicyStatus,
}

/// Depth of one queue, or why it is unknown.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStatus {
    /// Its URL, when known.
    pub url: Option<String>,
    /// Whether GetQueueAttributes answered.
    pub reachable: bool,
    /// `ApproximateNumberOfMessages`: waiting to be received.
    pub waiting: Option<u64>,
    /// `ApproximateNumberOfMessagesNotVisible`: received, being worked on or waiting for a retry.
    pub in_flight: Option<u64>,
    /// `ApproximateNumberOfMessagesDelayed`.
    pub delayed: Option<u64>,
    /// Why the depth is unknown.
    pub error: Option<String>,
}

/// Messages by outcome (each message counted once per outcome, however often received).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    /// Accepted (cataloged and governed).
    pub accepted: u64,
    /// Rejected at the validation boundary.
    pub rejected: u64,
    /// Failed (retried, or in the dead-letter queue after `maxReceiveCount`).
    pub failed: u64,
}

/// The newest error.
#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    /// When (UTC).
    pub at: String,
    /// `announcement` or `policy`.
    pub source: &'static str,
    /// What it was about: `rejected announcement 3f49… of chu-lyon`, `policy reload`.
    pub subject: String,
    /// The error.
    pub error: String,
}

/// The policy file against the last one applied with `apply`.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyStatus {
    /// The file.
    pub file: PathBuf,
    /// SHA-256 of its bytes now (`None` when it cannot be read).
    pub sha256: Option<String>,
    /// Why it cannot be read.
    pub error: Option<String>,
    /// SHA-256 of the policy the last successful `apply` ran with.
    pub last_applied_sha256: Option<String>,
    /// When that was.
    pub last_applied_at: Option<String>,
    /// Whether the file differs from the last applied one (`None`: never applied or unreadable).
    pub differs_from_last_applied: Option<bool>,
    /// When the last successful `plan` ran.
    pub last_plan_at: Option<String>,
}

/// Gathers the report: the store (read only; nothing is created), the queues, the file.
pub async fn gather(settings: &Settings, sqs: &Sqs, failures: usize) -> Result<Status, StateError> {
    let state_file = settings.state_dir.join(crate::state::FILE_NAME);
    let read = StateStore::open_existing(&settings.state_dir)
        .and_then(|store| store.map(|s| s.summary(failures)).transpose());
    let (summary, state_error) = match read {
        Ok(summary) => (summary, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let state_present = summary.is_some() || state_error.is_some();
    let summary = summary.unwrap_or_default();

    let (queue, redrive_target) = queue_status(sqs, &settings.queue_url).await;
    let dead_letter_queue = match (&settings.dead_letter_queue_url, redrive_target) {
        (Some(url), _) => queue_status(sqs, url).await.0,
        (None, Some(arn)) => match sibling_queue_url(&settings.queue_url, &arn) {
            Some(url) => queue_status(sqs, &url).await.0,
            None => QueueStatus {
                error: Some(format!("{arn}: not a queue ARN")),
                ..QueueStatus::default()
            },
        },
        (None, None) => QueueStatus {
            error: Some(if queue.reachable {
                "the queue has no redrive policy (no dead-letter queue)".into()
            } else {
                "unknown: the queue does not answer and dead_letter_queue_url is not set".into()
            }),
            ..QueueStatus::default()
        },
    };

    let (sha256, error) = match std::fs::read(&settings.policy_file) {
        Ok(bytes) => (Some(crate::state::policy_sha256(&bytes)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let last_applied_sha256 = summary.last_apply.as_ref().map(|r| r.policy_sha256.clone());
    let policy = PolicyStatus {
        file: settings.policy_file.clone(),
        differs_from_last_applied: match (&sha256, &last_applied_sha256) {
            (Some(now), Some(then)) => Some(now != then),
            _ => None,
        },
        sha256,
        error,
        last_applied_sha256,
        last_applied_at: summary.last_apply.as_ref().map(|r| r.at.clone()),
        last_plan_at: summary.last_plan.as_ref().map(|r| r.at.clone()),
    };

    let from_announcement = summary.recent_failures.first().map(|r| LastError {
        at: r.at.clone(),
        source: "announcement",
        subject: describe(r),
        error: r.error.clone().unwrap_or_default(),
    });
    let from_policy = summary.last_policy_error.as_ref().map(|r| LastError {
        at: r.at.clone(),
        source: "policy",
        subject: format!("policy {}", kind_name(r.kind)),
        error: r.error.clone().unwrap_or_default(),
    });
    // Timestamps are fixed-width UTC (`%Y-%m-%dT%H:%M:%fZ`): they compare as strings.
    let last_error = match (from_announcement, from_policy) {
        (Some(a), Some(p)) => Some(if p.at > a.at { p } else { a }),
        (a, p) => a.or(p),
    };

    Ok(Status {
        config: settings.path.clone(),
        state_file,
        state_present,
        state_error,
        queue,
        dead_letter_queue,
        announcements: Counts {
            accepted: summary.accepted,
            rejected: summary.rejected,
            failed: summary.failed,
        },
        last_success: summary.last_success,
        last_error,
        recent_failures: summary.recent_failures,
        policy,
    })
}

/// The URL of the dead-letter queue `arn:…:sqs:REGION:ACCOUNT:NAME` beside `queue_url`: SQS
/// requires a dead-letter queue in the queue's account and region, so only the name differs
/// (and no GetQueueUrl permission is needed).
fn sibling_queue_url(queue_url: &str, arn: &str) -> Option<String> {
    let name = arn.rsplit(':').next().filter(|n| !n.is_empty())?;
    let (base, _) = queue_url.trim_end_matches('/').rsplit_once('/')?;
    Some(format!("{base}/{name}"))
}

async fn within<T, E: fmt::Display>(
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(QUEUE_TIMEOUT, fut).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", QUEUE_TIMEOUT.as_secs())),
    }
}

/// A queue's depth, and its redrive target when it has one.
async fn queue_status(sqs: &Sqs, url: &str) -> (QueueStatus, Option<String>) {
    match within(sqs.attributes(url)).await {
        Ok(a) => {
            let n = |k: &str| a.get(k).and_then(|v| v.parse().ok());
            (
                QueueStatus {
                    url: Some(url.to_owned()),
                    reachable: true,
                    waiting: n("ApproximateNumberOfMessages"),
                    in_flight: n("ApproximateNumberOfMessagesNotVisible"),
                    delayed: n("ApproximateNumberOfMessagesDelayed"),
                    error: None,
                },
                a.get("RedrivePolicy")
                    .and_then(|p| redrive(p))
                    .map(|(_, arn)| arn),
            )
        }
        Err(error) => (
            QueueStatus {
                url: Some(url.to_owned()),
                error: Some(error),
                ..QueueStatus::default()
            },
            None,
        ),
    }
}

fn kind_name(k: crate::state::RunKind) -> &'static str {
    match k {
        crate::state::RunKind::Plan => "plan",
        crate::state::RunKind::Apply => "apply",
        crate::state::RunKind::Reload => "reload",
    }
}

fn describe(r: &AnnouncementRecord) -> String {
    let outcome = match r.outcome {
        Outcome::Accepted => "accepted",
        Outcome::Rejected => "rejected",
        Outcome::Failed => "failed",
    };
    let mut s = format!(
        "{outcome} announcement {} of {}",
        r.batch_id.as_deref().unwrap_or("?"),
        r.producer.as_deref().unwrap_or("?")
    );
    if let Some(p) = &r.product {
        s.push_str(&format!(" ({p})"));
    }
    s.push_str(&format!(", message {}", r.message_id));
    s
}

fn depth(q: &QueueStatus) -> String {
    match (&q.url, q.reachable) {
        (Some(url), true) => format!(
            "{url}: {} waiting, {} in flight, {} delayed",
            q.waiting.unwrap_or(0),
            q.in_flight.unwrap_or(0),
            q.delayed.unwrap_or(0)
        ),
        (Some(url), false) => format!(
            "{url}: not reachable ({})",
            q.error.as_deref().unwrap_or("?")
        ),
        (None, _) => q.error.clone().unwrap_or_else(|| "unknown".into()),
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "state          {}{}",
            self.state_file.display(),
            match (&self.state_error, self.state_present) {
                (Some(e), _) => format!(
                    " UNREADABLE: {e} (the counts below are missing; move it aside and the service starts a new one)"
                ),
                (None, true) => String::new(),
                (None, false) => " (not created yet: the service has not run)".to_owned(),
            }
        )?;
        writeln!(f, "queue          {}", depth(&self.queue))?;
        writeln!(f, "dead letters   {}", depth(&self.dead_letter_queue))?;
        let c = &self.announcements;
        writeln!(
            f,
            "announcements  {} accepted, {} rejected, {} failed",
            c.accepted, c.rejected, c.failed
        )?;
        match &self.last_success {
            Some(r) => writeln!(f, "last success   {} {}", r.at, describe(r))?,
            None => writeln!(f, "last success   none")?,
        }
        match &self.last_error {
            Some(e) => writeln!(f, "last error     {} {}: {}", e.at, e.subject, e.error)?,
            None => writeln!(f, "last error     none")?,
        }
        let p = &self.policy;
        let short = |h: &str| h.chars().take(12).collect::<String>();
        let verdict = match (&p.sha256, p.differs_from_last_applied) {
            (None, _) => format!("cannot be read: {}", p.error.as_deref().unwrap_or("?")),
            (Some(now), Some(false)) => format!(
                "sha256 {}: the one last applied ({})",
                short(now),
                p.last_applied_at.as_deref().unwrap_or("?")
            ),
            (Some(now), Some(true)) => format!(
                "sha256 {}: differs from the one last applied ({} at {}); run `lakemesh-syncd plan`, then `apply`",
                short(now),
                short(p.last_applied_sha256.as_deref().unwrap_or("?")),
                p.last_applied_at.as_deref().unwrap_or("?")
            ),
            (Some(now), None) => format!(
                "sha256 {}: never applied with `lakemesh-syncd apply` from this host",
                short(now)
            ),
        };
        writeln!(f, "policy         {} {verdict}", p.file.display())?;
        if !self.recent_failures.is_empty() {
            writeln!(f, "recent failures (newest first):")?;
            for r in &self.recent_failures {
                writeln!(
                    f,
                    "  {} {}: {}",
                    r.at,
                    describe(r),
                    r.error.as_deref().unwrap_or("")
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dead_letter_queue_lives_beside_the_queue() {
        assert_eq!(
            sibling_queue_url(
                "https://sqs.eu-west-3.amazonaws.com/999988887777/lakemesh-announcements",
                "arn:aws:sqs:eu-west-3:999988887777:lakemesh-announcements-dlq"
            )
            .as_deref(),
            Some("https://sqs.eu-west-3.amazonaws.com/999988887777/lakemesh-announcements-dlq")
        );
        assert_eq!(sibling_queue_url("https://sqs/x", "arn:aws:sqs:r:1:"), None);
    }
}
