//! The agent's folders on disk and the file operations the delivery steps rely on.
//!
//! Owns where things live under `state_dir` (`ledger.sqlite`, `agent.lock`, per product
//! `inbox/P` unless the contract names one, `work/P/{id}/`, `archive/P/YYYY-MM-DD/`,
//! `failed/P/`), the spool (`spool/{id}/`, the converter's output root for one claimed file),
//! and the durable moves between them: rename (or copy, fsync, rename, remove across file
//! systems), then fsync of both folders. Does not decide when a file moves (the pipeline does).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::AgentConfig;

/// Folders of one agent, derived from its configuration.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `state_dir`.
    pub state_dir: PathBuf,
    /// `spool_dir`.
    pub spool_dir: PathBuf,
    /// Inbox of each product, by product name.
    inboxes: Vec<(String, PathBuf)>,
}

impl Layout {
    /// The layout of `cfg`.
    pub fn new(cfg: &AgentConfig) -> Self {
        let inboxes = cfg
            .products
            .iter()
            .map(|p| {
                let inbox = p
                    .inbox
                    .clone()
                    .unwrap_or_else(|| cfg.state_dir.join("inbox").join(&p.name));
                (p.name.clone(), inbox)
            })
            .collect();
        Self {
            state_dir: cfg.state_dir.clone(),
            spool_dir: cfg.spool_dir.clone(),
            inboxes,
        }
    }

    /// `{state_dir}/ledger.sqlite`.
    pub fn ledger(&self) -> PathBuf {
        self.state_dir.join("ledger.sqlite")
    }

    /// `{state_dir}/agent.lock`: held by `run` and `ingest` while they deliver.
    pub fn lock_file(&self) -> PathBuf {
        self.state_dir.join("agent.lock")
    }

    /// Every product with its inbox.
    pub fn inboxes(&self) -> &[(String, PathBuf)] {
        &self.inboxes
    }

    /// The inbox of `product` (`{state_dir}/inbox/{product}` unless the contract names one).
    pub fn inbox(&self, product: &str) -> PathBuf {
        self.inboxes.iter().find(|(p, _)| p == product).map_or_else(
            || self.state_dir.join("inbox").join(product),
            |(_, d)| d.clone(),
        )
    }

    /// `work/{product}/{id}/`: the claimed file, under its own name, and the converter's reports.
    pub fn work_dir(&self, product: &str, id: i64) -> PathBuf {
        self.state_dir
            .join("work")
            .join(product)
            .join(id.to_string())
    }

    /// `spool/{id}/`: the converter's output root for claimed file `id`.
    pub fn spool(&self, id: i64) -> PathBuf {
        self.spool_dir.join(id.to_string())
    }

    /// `archive/{product}/`.
    pub fn archive_root(&self, product: &str) -> PathBuf {
        self.state_dir.join("archive").join(product)
    }

    /// `archive/{product}/{day}/`, day as `YYYY-MM-DD`.
    pub fn archive_dir(&self, product: &str, day: &str) -> PathBuf {
        self.archive_root(product).join(day)
    }

    /// `failed/{product}/`.
    pub fn failed_dir(&self, product: &str) -> PathBuf {
        self.state_dir.join("failed").join(product)
    }

    /// Creates the state folders and every product's inbox, work, archive and failed folders.
    pub fn create_all(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.state_dir)?;
        std::fs::create_dir_all(&self.spool_dir)?;
        for (product, inbox) in &self.inboxes {
            std::fs::create_dir_all(inbox)?;
            std::fs::create_dir_all(self.state_dir.join("work").join(product))?;
            std::fs::create_dir_all(self.archive_root(product))?;
            std::fs::create_dir_all(self.failed_dir(product))?;
        }
        Ok(())
    }
}

/// fsync of a folder, so a rename into or out of it survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Moves `from` to `to` durably: a rename when both are on one file system, else a copy to a
/// hidden temporary name beside `to`, fsync, rename, then removal of `from`. The destination's
/// folder is created. Both folders are synced.
pub fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    let parent = to
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent folder", to.display())))?;
    std::fs::create_dir_all(parent)?;
    match std::fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_durably(from, to)?;
            std::fs::remove_file(from)?;
        }
        Err(e) => return Err(e),
    }
    sync_dir(parent)?;
    if let Some(p) = from.parent() {
        sync_dir(p)?;
    }
    Ok(())
}

/// Copies `from` to `to` (temp beside `to`, fsync, rename, fsync of the folder).
pub fn copy_durably(from: &Path, to: &Path) -> io::Result<()> {
    let parent = to
        .parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent folder", to.display())))?;
    std::fs::create_dir_all(parent)?;
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.lakemesh-copy"));
    std::fs::copy(from, &tmp)?;
    File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, to)?;
    sync_dir(parent)
}

/// `to`, or when it exists `to.1`, `to.2`…: a name in `to`'s folder no file has.
pub fn free_name(to: &Path) -> PathBuf {
    if !to.exists() {
        return to.to_path_buf();
    }
    let mut n = 1u32;
    loop {
        let mut s = to.as_os_str().to_owned();
        s.push(format!(".{n}"));
        let p = PathBuf::from(s);
        if !p.exists() {
            return p;
        }
        n += 1;
    }
}

/// Today (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    crate::convert::now_rfc3339()[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_and_free_names() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.csv");
        std::fs::write(&a, b"x").unwrap();
        let b = d.path().join("sub").join("a.csv");
        move_file(&a, &b).unwrap();
        assert!(!a.exists() && b.exists());
        assert_eq!(free_name(&b), d.path().join("sub").join("a.csv.1"));
        assert_eq!(free_name(&a), a);
        copy_durably(&b, &a).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), b"x");
        assert_eq!(today().len(), 10);
    }
}
