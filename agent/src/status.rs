//! `lakemesh-agent status`: the backlog (files claimed but not delivered, and files waiting in
//! the inboxes), the last error, the last delivery and the failed files, as text or JSON.
//!
//! Reads the ledger and the folders only; it works while the service runs (the ledger is in WAL
//! mode) and changes nothing.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::AgentConfig;
use crate::layout::Layout;
use crate::ledger::{FileRecord, Ledger, LedgerError, State};
use crate::watch::is_ignored_name;

/// What `status` prints.
#[derive(Debug, Serialize)]
pub struct Status {
    /// The producer.
    pub producer_id: String,
    /// `s3://bucket/prefix/`.
    pub destination: String,
    /// The queue.
    pub queue_url: String,
    /// Files claimed and not delivered yet, oldest first (each with its state, attempts and
    /// last error).
    pub backlog: Vec<FileRecord>,
    /// Bytes of the backlog's sources.
    pub backlog_bytes: u64,
    /// Objects converted and not in the bucket yet.
    pub objects_pending: u64,
    /// Data files in each product's inbox, not claimed yet.
    pub inbox: Vec<InboxCount>,
    /// Files in each product's failed folder (with their reports).
    pub failed: Vec<InboxCount>,
    /// Files by state, over the ledger's whole history.
    pub counts: Vec<(State, u64)>,
    /// The last error: (message, time).
    pub last_error: Option<(String, String)>,
    /// The last delivered file.
    pub last_delivered: Option<FileRecord>,
}

/// Files of one product in a folder.
#[derive(Debug, Serialize)]
pub struct InboxCount {
    /// The product.
    pub product: String,
    /// The folder.
    pub dir: PathBuf,
    /// Data files in it.
    pub files: usize,
}

fn count_data_files(dir: &std::path::Path, failed: bool) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                if failed {
                    !(n.ends_with(".error.json")
                        || n.ends_with(".rejects.csv")
                        || n.ends_with(".contract.toml")
                        || n.starts_with('.'))
                } else {
                    !is_ignored_name(&n)
                }
            })
            .count()
    })
}

/// Reads the status of the agent configured by `cfg`.
pub fn read(cfg: &AgentConfig) -> Result<Status, LedgerError> {
    let layout = Layout::new(cfg);
    let st = if layout.ledger().exists() {
        Some(Ledger::open(&layout.ledger())?.status()?)
    } else {
        None
    };
    let counts = |failed: bool| {
        layout
            .inboxes()
            .iter()
            .map(|(p, inbox)| {
                let dir = if failed {
                    layout.failed_dir(p)
                } else {
                    inbox.clone()
                };
                InboxCount {
                    product: p.clone(),
                    files: count_data_files(&dir, failed),
                    dir,
                }
            })
            .collect::<Vec<_>>()
    };
    let (inbox, failed) = (counts(false), counts(true));
    let location = if cfg.prefix.is_empty() {
        format!("s3://{}/", cfg.bucket)
    } else {
        format!("s3://{}/{}/", cfg.bucket, cfg.prefix)
    };
    Ok(match st {
        Some(s) => Status {
            producer_id: cfg.producer_id.clone(),
            destination: location,
            queue_url: cfg.queue_url.clone(),
            backlog: s.backlog,
            backlog_bytes: s.backlog_bytes,
            objects_pending: s.objects_pending,
            inbox,
            failed,
            counts: s.counts,
            last_error: s.last_error,
            last_delivered: s.last_delivered,
        },
        None => Status {
            producer_id: cfg.producer_id.clone(),
            destination: location,
            queue_url: cfg.queue_url.clone(),
            backlog: Vec::new(),
            backlog_bytes: 0,
            objects_pending: 0,
            inbox,
            failed,
            counts: Vec::new(),
            last_error: None,
            last_delivered: None,
        },
    })
}

impl Status {
    /// The text form: a few lines a person reads at a glance.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let waiting: usize = self.inbox.iter().map(|i| i.files).sum();
        let failed: usize = self.failed.iter().map(|i| i.files).sum();
        out.push_str(&format!(
            "producer {} → {} (queue {})\n",
            self.producer_id, self.destination, self.queue_url
        ));
        out.push_str(&format!(
            "backlog: {} files ({} bytes, {} objects not uploaded); {} in inboxes; {} failed\n",
            self.backlog.len(),
            self.backlog_bytes,
            self.objects_pending,
            waiting,
            failed
        ));
        for f in &self.backlog {
            out.push_str(&format!(
                "  {} {}/{}: {} since {}",
                f.id,
                f.product,
                f.name,
                f.state.as_str(),
                f.updated_at
            ));
            if f.attempts > 0 {
                out.push_str(&format!(", {} failed attempts", f.attempts));
            }
            out.push('\n');
        }
        for i in self.failed.iter().filter(|i| i.files > 0) {
            out.push_str(&format!(
                "  failed {}: {} files in {} (fix, then `lakemesh-agent retry --product {}`)\n",
                i.product,
                i.files,
                i.dir.display(),
                i.product
            ));
        }
        match &self.last_delivered {
            Some(f) => out.push_str(&format!(
                "last delivered: {}/{} batch {} ({} rows) at {}\n",
                f.product,
                f.name,
                f.batch_id.as_deref().unwrap_or("?"),
                f.rows.unwrap_or(0),
                f.updated_at
            )),
            None => out.push_str("last delivered: none\n"),
        }
        match &self.last_error {
            Some((e, at)) => out.push_str(&format!("last error: {at}: {e}\n")),
            None => out.push_str("last error: none\n"),
        }
        out
    }
}
