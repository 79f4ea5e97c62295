//! `lakemesh-agent check-config`: the configuration parses and validates (every error names
//! its key), the state folders can be written, and the AWS side answers: the bucket
//! (HeadBucket) and the queue (GetQueueAttributes). One line per check; any failure makes the
//! command exit non-zero.

use crate::config::AgentConfig;
use crate::layout::Layout;
use crate::s3::S3;
use crate::sqs::Sqs;

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`bucket s3://b/p/`).
    pub what: String,
    /// `Ok(detail)` or `Err(reason)`.
    pub outcome: Result<String, String>,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Ok(d) => write!(f, "ok      {}: {d}", self.what),
            Err(e) => write!(f, "FAILED  {}: {e}", self.what),
        }
    }
}

/// Runs every check of a loaded configuration.
pub async fn check(cfg: &AgentConfig, sdk: &lakemesh_shared::aws::SdkConfig) -> Vec<Check> {
    let mut out = check_local(cfg);
    let s3 = S3::new(lakemesh_shared::aws::s3_client(sdk, &cfg.aws), &cfg.bucket);
    out.push(Check {
        what: format!("bucket s3://{}", cfg.bucket),
        outcome: s3
            .head_bucket()
            .await
            .map(|()| "reachable (HeadBucket)".into())
            .map_err(|e| e.to_string()),
    });
    let sqs = Sqs::new(aws_sdk_sqs::Client::new(sdk), &cfg.queue_url);
    out.push(Check {
        what: format!("queue {}", cfg.queue_url),
        outcome: sqs
            .get_queue_attributes()
            .await
            .map(|()| "reachable (GetQueueAttributes)".into())
            .map_err(|e| e.to_string()),
    });
    out
}

/// The checks that need no network: the configuration and the state folders.
pub fn check_local(cfg: &AgentConfig) -> Vec<Check> {
    let mut out = vec![Check {
        what: format!("config {}", cfg.path.display()),
        outcome: Ok(format!(
            "valid; producer {}, {} products",
            cfg.producer_id,
            cfg.products.len()
        )),
    }];
    let layout = Layout::new(cfg);
    let writable = layout.create_all().and_then(|()| {
        let probe = layout.state_dir.join(".lakemesh-check");
        std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe))
    });
    if let Some(k) = &cfg.pseudonym_key_file {
        out.push(Check {
            what: format!("pseudonym_key_file {}", k.display()),
            outcome: cfg
                .check_key()
                .map(|()| "readable by this user only, long enough".into())
                .map_err(|e| e.to_string()),
        });
    }
    out.push(Check {
        what: format!("state_dir {}", layout.state_dir.display()),
        outcome: writable
            .map(|()| "writable; inbox, work, archive and failed folders present".into())
            .map_err(|e| e.to_string()),
    });
    out
}
