//! Logging: the `log` facade's backend for both binaries.
//!
//! - [`init`]: the journald backend (`systemd-journal-logger`, structured fields from the
//!   records' key-values: `PRODUCT`, `BATCH`, `FILE`…) when the process was started by systemd
//!   with its standard error connected to the journal (`JOURNAL_STREAM` set and matching,
//!   `connected_to_journal()`), and the journal socket exists; plain lines on standard error
//!   otherwise (also when the journal is unavailable).
//! - [`init_stderr`]: standard error only (the command-line tools).
//!
//! On standard error each line is `level: message` followed by the record's key-values as
//! ` key=value`. The level comes from `LAKEMESH_LOG` (`error`, `warn`, `info` (default),
//! `debug`, `trace`). Owns nothing else.

use std::io::Write;

/// Where the journal listens (systemd's native protocol socket).
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

struct Stderr;

struct Fields<'a>(&'a mut String);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.push_str(&format!(" {key}={value}"));
        Ok(())
    }
}

/// `level: message key=value…`, the standard error form of a record.
pub fn format_line(record: &log::Record<'_>) -> String {
    let mut line = format!(
        "{}: {}",
        record.level().as_str().to_ascii_lowercase(),
        record.args()
    );
    let mut fields = String::new();
    let _ = record.key_values().visit(&mut Fields(&mut fields));
    line.push_str(&fields);
    line
}

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(std::io::stderr().lock(), "{}", format_line(record));
        }
    }

    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// The level named by `LAKEMESH_LOG`, `info` when unset or unknown.
pub fn level_from_env() -> log::LevelFilter {
    std::env::var("LAKEMESH_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(log::LevelFilter::Info)
}

/// Installs the stderr logger (once; later calls keep the first).
pub fn init_stderr() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level_from_env());
    }
}

/// Which backend [`init`] picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The systemd journal.
    Journal,
    /// Standard error.
    Stderr,
}

/// The backend for this process: the journal when started by systemd with standard error on
/// the journal and the journal socket present, standard error otherwise.
pub fn choose_backend() -> Backend {
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    if under_systemd
        && systemd_journal_logger::connected_to_journal()
        && std::path::Path::new(JOURNAL_SOCKET).exists()
    {
        Backend::Journal
    } else {
        Backend::Stderr
    }
}

/// Installs the service's logger (once): see the module documentation. Returns the backend in
/// use.
pub fn init() -> Backend {
    if choose_backend() == Backend::Journal {
        let installed = systemd_journal_logger::JournalLog::new()
            .map(|j| j.with_extra_fields([("VERSION", env!("CARGO_PKG_VERSION"))]))
            .map_err(|e| e.to_string())
            .and_then(|j| j.install().map_err(|e| e.to_string()));
        match installed {
            Ok(()) => {
                log::set_max_level(level_from_env());
                return Backend::Journal;
            }
            Err(e) => {
                init_stderr();
                log::warn!("journal unavailable ({e}); logging to standard error");
                return Backend::Stderr;
            }
        }
    }
    init_stderr();
    Backend::Stderr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_lines_carry_the_fields() {
        let kvs: [(&str, log::kv::Value<'_>); 2] = [
            ("product", log::kv::Value::from("stays")),
            ("rows", log::kv::Value::from(12u64)),
        ];
        let line = format_line(
            &log::Record::builder()
                .level(log::Level::Info)
                .args(format_args!("delivered"))
                .key_values(&kvs)
                .build(),
        );
        assert_eq!(line, "info: delivered product=stays rows=12");
    }

    #[test]
    fn outside_systemd_the_backend_is_stderr() {
        // The test runner's stderr is not the journal, whatever JOURNAL_STREAM says.
        assert_eq!(choose_backend(), Backend::Stderr);
    }
}
