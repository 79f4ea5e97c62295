//! The folder protocol of a product inbox: which dropped files are ready to claim, and when to
//! look.
//!
//! A file is *ready* when its name is not hidden or temporary (`.*`, `*.tmp`, `*.part`, `~$*`,
//! and not itself a marker `*.done`/`*.ok`), it is not empty, and either its marker
//! `NAME.done`/`NAME.ok` exists (`require_marker = true`) or its size and modification time have
//! stayed the same for `settle_secs` (observed by this process: a copy in progress keeps
//! changing them). An empty file is left alone until it grows.
//!
//! Owns the readiness rule ([`classify`]), the per-inbox observations ([`Inbox::scan`]) and the
//! file-system events ([`EventWatcher`]: `notify` through `notify-debouncer-full`, watching the
//! folders, not the files; events only wake a scan, and the periodic rescan covers network shares
//! that deliver none). Does not claim (the pipeline renames a ready file into `work/`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify_debouncer_full::notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::sync::mpsc;

/// Marker suffixes: `NAME.done` or `NAME.ok` beside `NAME`.
pub const MARKER_SUFFIXES: [&str; 2] = [".done", ".ok"];

/// What the folder protocol says about one entry of an inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Never a data file: hidden, temporary, a lock file or a marker.
    Skip,
    /// A data file not ready yet (empty, still changing, or waiting for its marker).
    Wait,
    /// Ready to claim.
    Ready,
}

/// Whether the name alone rules the file out: `.*` (hidden), `*.tmp`, `*.part`, `~$*` (Office
/// lock files), or a marker (`*.done`, `*.ok`). Suffixes are compared without case.
pub fn is_ignored_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.starts_with("~$")
        || lower.ends_with(".tmp")
        || lower.ends_with(".part")
        || MARKER_SUFFIXES.iter().any(|m| lower.ends_with(m))
}

/// The readiness rule. `stable_for`: how long this size and modification time have been
/// observed unchanged; `marker`: whether `NAME.done` or `NAME.ok` exists.
pub fn classify(
    name: &str,
    size: u64,
    stable_for: Duration,
    marker: bool,
    require_marker: bool,
    settle: Duration,
) -> Verdict {
    if is_ignored_name(name) {
        return Verdict::Skip;
    }
    if size == 0 {
        return Verdict::Wait;
    }
    let ready = if require_marker {
        marker
    } else {
        stable_for >= settle
    };
    if ready { Verdict::Ready } else { Verdict::Wait }
}

/// The markers that may exist for a data file `name` in `dir`.
pub fn marker_paths(dir: &Path, name: &str) -> Vec<PathBuf> {
    MARKER_SUFFIXES
        .iter()
        .map(|m| dir.join(format!("{name}{m}")))
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    size: u64,
    mtime: Option<SystemTime>,
    since: Instant,
}

/// One product's inbox and what this process has observed in it.
#[derive(Debug)]
pub struct Inbox {
    /// The product.
    pub product: String,
    /// The folder.
    pub dir: PathBuf,
    require_marker: bool,
    settle: Duration,
    seen: HashMap<String, Seen>,
    /// Entries that can never be claimed, already logged once (logged again only after they
    /// went away and came back).
    warned: std::collections::HashSet<std::ffi::OsString>,
}

/// The result of one scan.
#[derive(Debug, Default)]
pub struct Scan {
    /// Files ready to claim, oldest modification first (then by name).
    pub ready: Vec<PathBuf>,
    /// Data files still waiting (empty, settling, or without marker).
    pub waiting: usize,
    /// Entries that are never claimed (links, folders, names that are not UTF-8 or hold
    /// control characters); each is logged once.
    pub unusable: usize,
}

impl Inbox {
    /// An inbox with no observation yet.
    pub fn new(product: &str, dir: PathBuf, require_marker: bool, settle: Duration) -> Self {
        Self {
            product: product.to_owned(),
            dir,
            require_marker,
            settle,
            seen: HashMap::new(),
            warned: std::collections::HashSet::new(),
        }
    }

    /// Lists the folder (not its subfolders) and applies the rule at `now`. A file whose size
    /// or modification time changed since the last scan starts settling again.
    pub fn scan(&mut self, now: Instant) -> std::io::Result<Scan> {
        let mut names = Vec::new();
        let mut unusable = std::collections::HashSet::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Ok(ft) = entry.file_type() else { continue };
            let raw = entry.file_name();
            let why = if !ft.is_file() {
                let hidden = raw.to_str().is_some_and(is_ignored_name);
                (!hidden).then(|| {
                    if ft.is_symlink() {
                        "a symbolic link, not a file: drop the file itself"
                    } else {
                        "not a regular file (a folder?): only files directly in the inbox are claimed"
                    }
                })
            } else {
                match raw.to_str() {
                    None => Some("its name is not UTF-8: rename it"),
                    Some(n) if n.chars().any(char::is_control) => {
                        Some("its name holds a control character (a line break?): rename it")
                    }
                    Some(n) => {
                        names.push(n.to_owned());
                        None
                    }
                }
            };
            if let Some(why) = why {
                if self.warned.insert(raw.clone()) {
                    log::warn!(
                        "inbox {}: {:?} is never claimed: {why}",
                        self.dir.display(),
                        raw
                    );
                }
                unusable.insert(raw);
            }
        }
        self.warned.retain(|n| unusable.contains(n));
        let present: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        self.seen.retain(|n, _| present.contains(n.as_str()));
        let mut scan = Scan::default();
        let mut ready: Vec<(Option<SystemTime>, String)> = Vec::new();
        for name in &names {
            if is_ignored_name(name) {
                continue;
            }
            let path = self.dir.join(name);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue; // gone since the listing
            };
            let (size, mtime) = (meta.len(), meta.modified().ok());
            let seen = self.seen.entry(name.clone()).or_insert(Seen {
                size,
                mtime,
                since: now,
            });
            if seen.size != size || seen.mtime != mtime {
                *seen = Seen {
                    size,
                    mtime,
                    since: now,
                };
            }
            let stable_for = now.saturating_duration_since(seen.since);
            let marker = self.require_marker
                && marker_paths(&self.dir, name).iter().any(|m| {
                    present.contains(m.file_name().and_then(|f| f.to_str()).unwrap_or(""))
                });
            match classify(
                name,
                size,
                stable_for,
                marker,
                self.require_marker,
                self.settle,
            ) {
                Verdict::Ready => ready.push((mtime, name.clone())),
                Verdict::Wait => scan.waiting += 1,
                Verdict::Skip => {}
            }
        }
        ready.sort();
        scan.ready = ready.into_iter().map(|(_, n)| self.dir.join(n)).collect();
        scan.unusable = unusable.len();
        Ok(scan)
    }

    /// Forgets a file (claimed, or moved away).
    pub fn forget(&mut self, name: &str) {
        self.seen.remove(name);
    }
}

/// File-system events of every inbox, as wake-ups: any event asks for a scan (scans are cheap,
/// and matching event paths to inboxes would miss renamed or symlinked folders).
pub struct EventWatcher {
    _debouncer: notify_debouncer_full::Debouncer<
        notify_debouncer_full::notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
}

impl EventWatcher {
    /// Watches each folder of `dirs` (non-recursively). A folder that cannot be watched (no
    /// inotify on a network share, the watch limit reached) is logged and left to the rescan.
    /// Wake-ups go to `wake` (bounded; when it is full a scan is already due, so the extra
    /// wake-up carries nothing and is not sent).
    pub fn start(dirs: &[PathBuf], wake: mpsc::Sender<()>) -> Option<Self> {
        let handler = move |result: DebounceEventResult| match result {
            Ok(events) => {
                if !events.is_empty() {
                    let _ = wake.try_send(());
                }
            }
            Err(errors) => {
                for e in errors {
                    log::warn!("inbox events: {e}");
                }
            }
        };
        let mut debouncer = match new_debouncer(Duration::from_millis(200), None, handler) {
            Ok(d) => d,
            Err(e) => {
                log::warn!("inbox events unavailable ({e}); relying on the periodic rescan");
                return None;
            }
        };
        for d in dirs {
            if let Err(e) = debouncer.watch(d, RecursiveMode::NonRecursive) {
                log::warn!(
                    "inbox {}: cannot watch ({e}); relying on the periodic rescan",
                    d.display()
                );
            }
        }
        Some(Self {
            _debouncer: debouncer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(30);

    #[test]
    fn hidden_temporary_lock_and_marker_names_are_skipped() {
        for n in [
            ".stays.csv",
            "stays.csv.tmp",
            "stays.csv.TMP",
            "stays.csv.part",
            "~$stays.xlsx",
            "stays.csv.done",
            "stays.csv.ok",
        ] {
            assert_eq!(classify(n, 10, S * 2, true, false, S), Verdict::Skip, "{n}");
        }
        assert!(!is_ignored_name("stays_2026_11.csv"));
        assert!(!is_ignored_name("stays.part.csv"));
    }

    #[test]
    fn an_empty_file_waits_until_it_grows() {
        assert_eq!(classify("a.csv", 0, S * 10, true, false, S), Verdict::Wait);
        assert_eq!(classify("a.csv", 0, S * 10, true, true, S), Verdict::Wait);
        assert_eq!(classify("a.csv", 1, S, false, false, S), Verdict::Ready);
    }

    #[test]
    fn settling_without_marker() {
        assert_eq!(
            classify("a.csv", 5, S - Duration::from_millis(1), false, false, S),
            Verdict::Wait
        );
        assert_eq!(classify("a.csv", 5, S, false, false, S), Verdict::Ready);
        assert_eq!(
            classify("a.csv", 5, Duration::ZERO, false, false, Duration::ZERO),
            Verdict::Ready
        );
    }

    #[test]
    fn with_require_marker_only_the_marker_counts() {
        assert_eq!(classify("a.csv", 5, S * 100, false, true, S), Verdict::Wait);
        assert_eq!(
            classify("a.csv", 5, Duration::ZERO, true, true, S),
            Verdict::Ready
        );
    }

    #[test]
    fn links_folders_and_unusable_names_are_never_claimed_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let settle = Duration::from_secs(1);
        let mut inbox = Inbox::new("p", d.path().to_path_buf(), false, settle);
        std::fs::write(d.path().join("good.csv"), b"x\n").unwrap();
        std::fs::write(d.path().join("new\nline.csv"), b"x\n").unwrap();
        std::os::unix::fs::symlink(d.path().join("good.csv"), d.path().join("link.csv")).unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::create_dir(d.path().join(".hidden-dir")).unwrap();
        let t0 = Instant::now();
        inbox.scan(t0).unwrap();
        for _ in 0..2 {
            let s = inbox.scan(t0 + settle * 2).unwrap();
            assert_eq!(s.ready, vec![d.path().join("good.csv")]);
            assert_eq!(s.unusable, 3, "the link, the folder and the line break");
        }
        assert_eq!(inbox.warned.len(), 3, "each logged once");
        std::fs::remove_file(d.path().join("new\nline.csv")).unwrap();
        inbox.scan(t0 + settle * 3).unwrap();
        assert_eq!(inbox.warned.len(), 2, "gone, forgotten");
    }

    #[test]
    fn scan_tracks_changes_and_markers() {
        let d = tempfile::tempdir().unwrap();
        let settle = Duration::from_secs(5);
        let mut inbox = Inbox::new("p", d.path().to_path_buf(), false, settle);
        let t0 = Instant::now();
        std::fs::write(d.path().join("a.csv"), b"x,y\n").unwrap();
        std::fs::write(d.path().join("empty.csv"), b"").unwrap();
        std::fs::write(d.path().join("b.csv.part"), b"x").unwrap();
        let s = inbox.scan(t0).unwrap();
        assert!(s.ready.is_empty());
        assert_eq!(s.waiting, 2);
        let s = inbox.scan(t0 + settle).unwrap();
        assert_eq!(s.ready, vec![d.path().join("a.csv")]);
        // It grows: settling starts again.
        std::fs::write(d.path().join("a.csv"), b"x,y\n1,2\n").unwrap();
        let s = inbox.scan(t0 + settle + Duration::from_secs(1)).unwrap();
        assert!(s.ready.is_empty());
        let s = inbox
            .scan(t0 + settle * 2 + Duration::from_secs(1))
            .unwrap();
        assert_eq!(s.ready.len(), 1);

        let m = tempfile::tempdir().unwrap();
        let mut marked = Inbox::new("p", m.path().to_path_buf(), true, settle);
        std::fs::write(m.path().join("a.csv"), b"x\n").unwrap();
        assert!(marked.scan(t0 + settle * 9).unwrap().ready.is_empty());
        std::fs::write(m.path().join("a.csv.ok"), b"").unwrap();
        assert_eq!(marked.scan(t0).unwrap().ready.len(), 1);
    }
}
