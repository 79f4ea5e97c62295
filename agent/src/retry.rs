//! `lakemesh-agent retry`: sends files from `failed/{product}/` back to the product's inbox
//! once the export or the contract was fixed, under the name they were dropped with, and
//! removes their reports. With `require_marker`, a `NAME.done` marker is written after the
//! file so the inbox claims it. The ledger marks the earlier attempt `retried`; the file is
//! then claimed and converted like a new drop.

use std::path::PathBuf;

use crate::config::AgentConfig;
use crate::layout::{self, Layout};
use crate::ledger::{Ledger, LedgerError, State};

/// Why a file could not be sent back.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// The ledger could not be read or written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// No such product in the configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// No such file in the failed folder.
    #[error("{}: no such failed file", .0.display())]
    NotFound(PathBuf),
    /// A report (or another file of the agent's) was named instead of a failed export.
    #[error("{}: a report beside a failed file, not an export; name the failed file itself ({})", .path.display(), .export)]
    Report {
        /// The report.
        path: PathBuf,
        /// What to name instead.
        export: String,
    },
    /// The inbox already has a file of that name.
    #[error("{}: the inbox already has a file of that name; leaving {} in place", .inbox.display(), .failed.display())]
    Taken {
        /// The inbox path.
        inbox: PathBuf,
        /// The failed file.
        failed: PathBuf,
    },
    /// A move failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn is_report(name: &str) -> bool {
    name.ends_with(".error.json")
        || name.ends_with(".rejects.csv")
        || name.ends_with(".contract.toml")
        || name.starts_with('.')
}

/// Moves `files` (names in `failed/{product}/`; every failed file when empty) back to the
/// inbox. Returns the inbox paths.
pub fn retry(
    cfg: &AgentConfig,
    product: &str,
    files: &[String],
) -> Result<Vec<PathBuf>, RetryError> {
    cfg.product(product)?;
    let layout = Layout::new(cfg);
    let failed_dir = layout.failed_dir(product);
    let names: Vec<String> = if files.is_empty() {
        let mut v: Vec<String> = std::fs::read_dir(&failed_dir)
            .map_err(|source| RetryError::Io {
                path: failed_dir.clone(),
                source,
            })?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| !is_report(n))
            .collect();
        v.sort();
        v
    } else {
        files
            .iter()
            .map(|f| {
                std::path::Path::new(f)
                    .file_name()
                    .map_or_else(|| f.clone(), |n| n.to_string_lossy().into_owned())
            })
            .collect()
    };
    let mut ledger = Ledger::open(&layout.ledger())?;
    let inbox = layout.inbox(product);
    std::fs::create_dir_all(&inbox).map_err(|source| RetryError::Io {
        path: inbox.clone(),
        source,
    })?;
    // Every name is checked before anything moves: a retry is all or nothing.
    let failed_files = ledger.in_state(State::Failed)?;
    let mut planned: Vec<(String, PathBuf, String, PathBuf)> = Vec::new();
    for name in names {
        let failed = failed_dir.join(&name);
        if is_report(&name) {
            let export = [".error.json", ".rejects.csv", ".contract.toml"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_owned();
            return Err(RetryError::Report {
                path: failed,
                export,
            });
        }
        if !failed.is_file() {
            return Err(RetryError::NotFound(failed));
        }
        // The name it was dropped with (the failed folder may have added `.N`).
        let original = failed_files
            .iter()
            .find(|f| f.product == product && f.final_path.as_deref() == Some(failed.as_path()))
            .map_or_else(|| name.clone(), |f| f.name.clone());
        let dest = inbox.join(&original);
        if dest.exists() || planned.iter().any(|(_, _, _, d)| *d == dest) {
            return Err(RetryError::Taken {
                inbox: dest,
                failed,
            });
        }
        planned.push((name, failed, original, dest));
    }
    let mut out = Vec::new();
    for (name, failed, original, dest) in planned {
        layout::move_file(&failed, &dest).map_err(|source| RetryError::Io {
            path: failed.clone(),
            source,
        })?;
        for suffix in [".error.json", ".rejects.csv", ".contract.toml"] {
            let _ = std::fs::remove_file(failed_dir.join(format!("{name}{suffix}")));
        }
        if cfg.service.require_marker {
            let marker = inbox.join(format!("{original}.done"));
            std::fs::write(&marker, b"").map_err(|source| RetryError::Io {
                path: marker,
                source,
            })?;
        }
        ledger.retried(product, &failed)?;
        log::info!(product = product, file = original.as_str(); "{} sent back to {}", failed.display(), dest.display());
        out.push(dest);
    }
    Ok(out)
}
